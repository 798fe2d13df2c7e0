"""Session fixtures shared by every test module: the tiny model and engines on it.

One vLLM engine serves the whole session (start-up ~7 s, a weight sync ~0.03 s). Tests share it, so a
test that needs particular weights syncs them first (`initial_weights` puts the random tiny model back;
any same-architecture checkpoint's tensors work too) and passes `version=` only after its own sync.

Do not start another in-process `vllm.LLM` in the test session: when any in-process engine shuts down
(garbage collection included) vLLM tears down its process-wide parallel state, which breaks this one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from rlreason.config import EngineConfig

MAX_MODEL_LEN = 256
# One intra-op thread: on a small shared machine OpenMP workers spin-waiting for busy cores made the
# tiny model's forward passes ~30x slower with 2 threads than with 1.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained Llama of the tiny architecture + its char-level tokenizer (float32)."""
    from rlreason.model.tiny import random_tiny_model

    return random_tiny_model(tmp_path_factory.mktemp("tiny-random"), seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def initial_weights(tiny_model_dir: str) -> dict[str, torch.Tensor]:
    """The tiny model's weights as saved: `engine.sync_weights(initial_weights.items(), v)` resets."""
    from safetensors.torch import load_file

    return load_file(f"{tiny_model_dir}/model.safetensors")


@pytest.fixture(scope="session")
def vllm_engine(tiny_model_dir: str, tiny_tokenizer) -> Iterator:
    from rlreason.engine import make_engine

    engine = make_engine(EngineConfig(name="vllm"), tiny_model_dir, tiny_tokenizer, dtype="float32", seed=0,
                         max_model_len=MAX_MODEL_LEN)
    yield engine
    engine.close()


@pytest.fixture
def hf_engine(tiny_model_dir: str, tiny_tokenizer) -> Iterator:
    from rlreason.engine import make_engine

    engine = make_engine(EngineConfig(name="hf", hf_batch_size=16), tiny_model_dir, tiny_tokenizer,
                         dtype="float32", seed=0, max_model_len=MAX_MODEL_LEN)
    yield engine
    engine.close()
