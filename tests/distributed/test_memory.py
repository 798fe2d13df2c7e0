"""The computed memory figures (README "Scaling") rest on a parameter count: it must be the model's."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from rlreason.distributed.memory import estimate, parameters

TINY = Path(__file__).resolve().parents[2] / "rlreason" / "model" / "assets" / "tiny-arith"


def test_parameter_count_is_the_models():
    config = json.loads((TINY / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    assert parameters(config)[0] == sum(p.numel() for p in model.parameters())
    tied = config | {"tie_word_embeddings": True}
    assert parameters(config)[0] - parameters(tied)[0] == config["vocab_size"] * config["hidden_size"]


def test_sharding_divides_the_training_state_and_a_7b_needs_several_gpus():
    deepseek = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 30, "vocab_size": 102400,
                "num_attention_heads": 32, "num_key_value_heads": 32}  # DeepSeekMath 7B's config.json
    one, eight = (estimate(deepseek, gpus=g, micro_batch=4, seq=1300) for g in (1, 8))
    assert round(one["parameters_billion"], 2) == 6.91
    assert one["adam"] == 8 * eight["adam"] and one["logits"] == eight["logits"]
    assert not one["fits"] and eight["fits"]
    assert estimate(deepseek, gpus=8, micro_batch=4, seq=1300, offload_ref=True)["reference_bf16"] == 0
