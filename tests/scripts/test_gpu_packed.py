"""scripts/gpu_packed.py, the GPU check's packed-attention row, run on the CPU (fp32, per-span SDPA): it passes
on the real packed path and fails its row when the packed row's episodes attend to each other."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402
from gpu_packed import check_packed  # noqa: E402


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    args = argparse.Namespace(device="cpu", size="tiny", seq=64, episodes=8, micro_batch=4)
    out = tmp_path_factory.mktemp("gpu-packed")
    return gpu_check.Check(args, str(out), gpu_check.build_model("tiny", args.seq, out))


def test_the_row_passes_on_the_cpu_within_fp32_tolerance(check):
    check.run("packed", lambda: check_packed(check))
    row = check.rows[-1]
    assert row["ok"], row["note"]
    assert row["note"].startswith("sdpa_varlen, fp32: max |diff| ") and "<= 1e-05" in row["note"]


def test_the_row_fails_when_episodes_attend_across_the_row(check, monkeypatch):
    from rlreason.learner import packing

    # Without the spans, the row is one causal sequence: each episode sees the ones before it.
    monkeypatch.setattr(packing.Packed, "kwargs", lambda self: {"input_ids": self.input_ids})
    check.run("packed", lambda: check_packed(check))
    row = check.rows[-1]
    assert not row["ok"] and "packed log-probs differ from padded" in row["note"]
