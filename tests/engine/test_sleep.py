"""engine.sleep_mode on GPUs (issue 20): sleep at level 2 (discard, no host copy), wake the weights, sync,
then wake the KV cache. The CPU worker has no sleep mode, so the order of the calls vLLM receives is
checked against a recording stand-in for `vllm.LLM`; the real one has not run (no GPU so far)."""

from __future__ import annotations

import pytest
import torch

from rlreason.config import EngineConfig
from rlreason.engine import SamplingParams
from rlreason.engine import _vllm_compat as compat
from rlreason.engine.vllm_engine import VLLMEngine


class RecordingLLM:
    def __init__(self):
        self.calls: list[tuple] = []

    def sleep(self, level: int = 1):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags) if tags is not None else None))
        return True

    def collective_rpc(self, method, kwargs=None):
        names = [n for n, _ in kwargs["weights_iterator"]]  # consumed, as a worker would
        self.calls.append((method, len(names)))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))
        return True


def recording_engine(monkeypatch, tokenizer, sleep_mode: bool) -> tuple[VLLMEngine, RecordingLLM]:
    """A VLLMEngine as on a GPU (the CPU worker has no sleep mode) around a RecordingLLM."""
    llm = RecordingLLM()
    monkeypatch.setattr(compat, "build_llm", lambda *a, **k: llm)
    monkeypatch.setattr(compat, "on_cpu", lambda: False)
    monkeypatch.setattr(compat, "check_alive", lambda llm: None)
    monkeypatch.setattr(compat, "in_process", lambda llm: True)
    engine = VLLMEngine(EngineConfig(name="vllm", sleep_mode=sleep_mode), "unused", tokenizer, dtype="bfloat16",
                        seed=0, max_model_len=64)
    return engine, llm


@pytest.fixture
def gpu_engine(monkeypatch, tiny_tokenizer):
    return recording_engine(monkeypatch, tiny_tokenizer, sleep_mode=True)


def test_sleep_discards_and_the_sync_brings_the_kv_cache_back_after_the_weights(gpu_engine):
    engine, llm = gpu_engine
    weights = {"a": torch.zeros(2), "b": torch.ones(3)}
    engine.sleep()
    engine.sleep()  # once asleep, a second call changes nothing
    engine.wake_up()
    engine.sync_weights(weights.items(), version=1)
    assert llm.calls == [("sleep", 2), ("wake_up", ("weights",)), ("reload_weights", 2),
                         ("wake_up", ("kv_cache",)), ("reset_prefix_cache",)]
    assert engine.version == 1 and not engine._asleep


def test_a_sync_alone_wakes_everything_and_no_generation_runs_on_discarded_weights(gpu_engine):
    engine, llm = gpu_engine
    engine.sleep()
    with pytest.raises(RuntimeError, match="asleep"):
        engine.generate([[1, 2]], SamplingParams(max_tokens=1))
    engine.wake_up()  # the weights' memory is back, but not their values
    with pytest.raises(RuntimeError, match="must be synced"):
        engine.generate([[1, 2]], SamplingParams(max_tokens=1))
    llm.calls.clear()
    engine.sleep()  # still asleep (KV cache): nothing new to discard
    engine.sync_weights([("a", torch.zeros(1))], version=2)
    assert llm.calls == [("reload_weights", 1), ("wake_up", ("kv_cache",)), ("reset_prefix_cache",)]


def test_without_sleep_mode_nothing_sleeps(monkeypatch, tiny_tokenizer):
    engine, llm = recording_engine(monkeypatch, tiny_tokenizer, sleep_mode=False)
    engine.sleep()
    engine.wake_up()
    engine.sync_weights([("a", torch.zeros(1))], version=1)
    assert llm.calls == [("reload_weights", 1), ("reset_prefix_cache",)]
