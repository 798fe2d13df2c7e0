"""The committed tiny model under vLLM: its weights load into the shared engine and greedy decoding
matches transformers token for token."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.engine.base import SamplingParams
from rlreason.model.tiny import ASSETS


@pytest.mark.vllm
def test_vllm_greedy_matches_hf(vllm_engine) -> None:
    tokenizer = AutoTokenizer.from_pretrained(ASSETS)
    _, test = generate_splits(0, 24, ArithSpec(), seed=0)
    prompts = [tokenizer(f"{q.problem}\n").input_ids for q in test]

    model = AutoModelForCausalLM.from_pretrained(ASSETS)
    hf = []
    for ids in prompts:
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=96)
        hf.append(out[0, len(ids):].tolist())

    version = vllm_engine.version + 1
    vllm_engine.sync_weights(load_file(str(ASSETS / "model.safetensors")).items(), version)
    outs = vllm_engine.generate(prompts, SamplingParams(temperature=0.0, max_tokens=96), version=version)
    eos = tokenizer.eos_token_id
    for (completion,), want in zip(outs, hf):
        assert [t for t in completion.token_ids if t != eos] == [t for t in want if t != eos]
        assert completion.text == tokenizer.decode(completion.token_ids, skip_special_tokens=True)
