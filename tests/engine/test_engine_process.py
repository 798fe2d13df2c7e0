"""engine.separate_process: vLLM's engine core in a process of its own (trainer.async_level=1 on CPU).

A second engine cannot start in the test session's process (tests/conftest.py), so a child process
starts one, syncs weights through /dev/shm, generates, kills the engine's processes and calls again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.vllm
@pytest.mark.slow
def test_a_dead_engine_process_is_a_clear_error_not_a_hang(tiny_model_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))  # this checkout's rlreason
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("engine_process_child.py")), tiny_model_dir],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["generated_before"] == 2 and out["killed"] >= 1
    assert out["scratch"].startswith("/dev/shm/") or not os.path.isdir("/dev/shm")
    assert out["error"] and "the vLLM engine process died" in out["error"], out
    assert out["seconds"] < 5, out  # at once, not after a timeout
