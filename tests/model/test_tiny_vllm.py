"""The committed tiny model under vLLM: it loads (head_dim, tokenizer) and greedy matches transformers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.model.tiny import ASSETS

pytest.importorskip("vllm")


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_greedy_matches_hf(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: faster start on CPU
    from vllm import LLM, SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(ASSETS)
    _, test = generate_splits(0, 24, ArithSpec(), seed=0)
    prompts = [tokenizer(f"{q.problem}\n").input_ids for q in test]

    model = AutoModelForCausalLM.from_pretrained(ASSETS)
    hf = []
    for ids in prompts:
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=96)
        hf.append(out[0, len(ids):].tolist())

    llm = LLM(model=str(ASSETS), enforce_eager=True, dtype="float32", block_size=32,
              kv_cache_memory_bytes=64 * 2**20, seed=0)
    outs = llm.generate([{"prompt_token_ids": ids} for ids in prompts],
                        SamplingParams(temperature=0.0, max_tokens=96), use_tqdm=False)
    eos = tokenizer.eos_token_id
    for out, want in zip(outs, hf):
        got = list(out.outputs[0].token_ids)
        assert [t for t in got if t != eos] == [t for t in want if t != eos]  # one side may keep the EOS
        # vLLM's incremental detokeniser must give the same text as a one-shot decode
        assert out.outputs[0].text == tokenizer.decode(got, skip_special_tokens=True)
