"""Engine-test fixtures: the engine under test (both kinds), the learner-side model, arith prompts."""

from __future__ import annotations

import pytest
import torch

from rlreason.data.arith import ArithSpec, generate_splits


@pytest.fixture(params=["hf", pytest.param("vllm", marks=pytest.mark.vllm)])
def engine(request: pytest.FixtureRequest):
    """Each engine test runs on both engines."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture
def policy(tiny_model_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def arith_texts() -> list[tuple[str, str]]:
    train, _ = generate_splits(64, 0, ArithSpec(max_steps=4), seed=1)
    return [(f"{q.problem}\n", f"{q.solution}") for q in train]


@pytest.fixture(scope="session")
def prompts(arith_texts, tiny_tokenizer) -> list[list[int]]:
    """Eight arith prompts of different lengths, as token ids (BOS first)."""
    return [tiny_tokenizer(p)["input_ids"] for p, _ in arith_texts[:8]]
