"""The device and dtype a run resolves (rlreason/trainer/build.py resolve_device), on a faked GPU machine."""

from __future__ import annotations

import torch

from rlreason.trainer.build import resolve_device
from tests.test_presets import compose_cfg


def test_make_run_keeps_the_tiny_model_in_float32_on_a_gpu(monkeypatch):
    """`make run` on a GPU: the tiny model's own float32 (conf/model/tiny.yaml), as on the CPU its results
    come from. vLLM then picks its Triton attention (FlashAttention and FlashInfer take fp16/bf16 only) and
    the learner runs without autocast (Learner.autocast is for dtypes other than float32).
    `model.dtype=auto` (model=hf's default) gives bf16 there."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = compose_cfg()
    assert cfg.model.name == "tiny" and cfg.device == "auto"
    assert resolve_device(cfg) == ("cuda", torch.float32)
    cfg.model.dtype = "auto"
    assert resolve_device(cfg) == ("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine: no NVIDIA driver either
    assert resolve_device(cfg) == ("cpu", torch.float32)
