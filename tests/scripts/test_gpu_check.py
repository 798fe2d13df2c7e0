"""scripts/gpu_check.py, the one-GPU check (issue 20), run here on the CPU (gloo, fp32, a tiny model): every
row runs and passes, and a check whose condition breaks (gradient checkpointing off) fails its row and the
exit status. On a GPU the same script checks bf16 autocast, NCCL and the peaks against the memory table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--device", "cpu", "--size", "tiny", "--seq", "64", "--episodes", "8", "--micro-batch", "4"]
CHECKS = ["torch sees the GPU", "engine=hf rollouts", "update: bf16 autocast + checkpointing",
          "PPO step with its critic", "FSDP2 update, world size 1", "DCP checkpoint and resume"]


def run(prelude: str = "") -> tuple[subprocess.CompletedProcess, list[dict]]:
    code = (f"import sys; sys.argv = ['gpu_check.py', *{ARGS!r}]; {prelude}\n"
            "import runpy; runpy.run_path('scripts/gpu_check.py', run_name='__main__')")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("gpu-check ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, json.loads(lines[-1].removeprefix("gpu-check "))


@pytest.mark.slow
def test_every_check_runs_and_passes_on_the_cpu():
    proc, rows = run()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [r["check"] for r in rows] == CHECKS and all(r["ok"] for r in rows), rows
    notes = {r["check"]: r["note"] for r in rows}
    assert "checkpointing on (4 layer calls / 2)" in notes["update: bf16 autocast + checkpointing"]
    assert "critic stepped" in notes["PPO step with its critic"]
    assert "backend gloo" in notes["FSDP2 update, world size 1"]
    assert "DCP round trip exact" in notes["DCP checkpoint and resume"]
    assert all(r["estimate_gib"] > 0 for r in rows[2:5])  # the memory table's figure beside each update
    assert "check" in proc.stdout and "result" in proc.stdout  # the printed table


@pytest.mark.slow
def test_a_broken_condition_fails_its_row_and_the_exit_status():
    proc, rows = run("import transformers; transformers.PreTrainedModel.gradient_checkpointing_enable = "
                     "lambda self, *a, **k: None")
    assert proc.returncode == 1
    failed = {r["check"]: r["note"] for r in rows if not r["ok"]}
    assert "update: bf16 autocast + checkpointing" in failed
    assert all(r["ok"] for r in rows if r["check"] in ("engine=hf rollouts", "FSDP2 update, world size 1"))
