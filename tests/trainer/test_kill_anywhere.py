"""kill -9 at 13 moments of a real CPU run, resume each time, and get the uninterrupted run.

Runs tests/trainer/kill_anywhere.py, the harness beside this file (see its docstring for the kill targets and the checks): ~2-3 min.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(("async_level", "lora_rank"), [(0, 0), (1, 0), (0, 4)])
def test_kill_anywhere_and_resume(tmp_path, async_level, lora_rank):
    """async_level=1: kills inside the producer's phases land in the batch in flight, one step ahead.
    lora_rank=4: the checkpoints hold the adapters and their optimizer only (learner.lora)."""
    # PYTHONPATH: the harness runs as a script, whose own dir leads sys.path; this checkout's rlreason, not
    # whichever one is installed
    env = dict(os.environ, OMP_NUM_THREADS="1", RLREASON_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("kill_anywhere.py")), "--kills", "13",
                           "--iterations", "8", "--seed", "0", "--workdir", str(tmp_path / "work"),
                           "--async-level", str(async_level), "--lora-rank", str(lora_rank)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["kills"] >= 10
    landed = summary["landed"]
    # the pause targets put a kill inside the store transaction and inside a checkpoint write, every time
    assert landed.get("inside commit", 0) >= 1 and landed.get("inside checkpoint", 0) >= 1
    assert len(landed) >= 5, landed  # and the others spread over the iteration's phases
    for check in ("store_attempts_equal: True", "store_selections_equal: True", "weights_equal: True",
                  "metrics_equal: True", "selected_questions_same: 8/8 iterations"):
        assert f"check {check}" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["guess", "dice"])
def test_kill_a_multi_turn_run_and_resume(tmp_path, env_name):
    """env.cls: kill -9 inside the turn-by-turn rollout and inside VinePPO's MC (continuations replaying
    the environment in its worker processes), resume, and get the uninterrupted run. guess:
    experiment=guess, the hidden-number game and its model (~1.5 min); dice: tests/envs/envs.py:Dice,
    whose observations and rewards come from each episode's seed (~1 min). engine=hf, as the harness."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RLREASON_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("kill_anywhere.py")), "--env", env_name,
                           "--kills", "2", "--iterations", "3", "--seed", "0", "--targets", "phase:rollout,phase:mc",
                           "--workdir", str(tmp_path / "work")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["kills"] == 2
    assert summary["landed"] == {"inside rollout": 1, "inside mc": 1}, summary["landed"]
    for check in ("store_attempts_equal: True", "weights_equal: True", "metrics_equal: True", "evals_equal: True",
                  "selected_questions_same: 3/3 iterations"):
        assert f"check {check}" in proc.stdout
