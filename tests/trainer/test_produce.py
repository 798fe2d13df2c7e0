"""The producer's thread (rlreason/trainer/produce.py), checked without an engine or a GPU."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

import rlreason.trainer.produce as produce


@pytest.mark.parametrize("device, current, expected", [
    ("cuda", 3, torch.device("cuda", 3)),  # under torchrun: the rank's device, set on the loop's thread
    ("cuda:1", 3, torch.device("cuda", 1)),
    ("cpu", 3, None),
])
def test_the_producer_thread_takes_the_loops_cuda_device(monkeypatch, device, current, expected):
    """A new thread's current CUDA device is device 0: under torchrun rank r's vLLM recorded its events on
    GPU 0's stream and crashed ("Event device r does not match recording stream's device 0"). The thread
    makes the loop's device its own before it produces anything; off CUDA it touches no CUDA call."""
    calls = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", threading.current_thread().name, d)))
    monkeypatch.setattr(produce, "produce", lambda run, it, phases, level: calls.append(("produce", it)))
    trainer = SimpleNamespace(iterations=5, checkpoint_every=2)  # (2 - 1) % 2: no behaviour weights to gather
    run = SimpleNamespace(cfg=SimpleNamespace(trainer=trainer), sampler=SimpleNamespace(state_dict=dict),
                          learner=SimpleNamespace(device=device))
    producer = produce.Producer(run, phases=None, level=1)
    producer.start(2)
    producer.join()
    first = [("set_device", "rlreason-producer-2", expected)] if expected is not None else []
    assert calls == [*first, ("produce", 2)]
