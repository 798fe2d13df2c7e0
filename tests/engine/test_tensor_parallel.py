"""engine.tensor_parallel_size=2 in one process (rlreason.eval allows it; training refuses it, see
tests/test_errors.py): vLLM's own worker processes hold the model, and a weight sync must reach them."""

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
def test_weights_reach_the_workers_of_a_one_process_tensor_parallel_engine(tiny_model_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "tests/engine/tp_child.py"), tiny_model_dir], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("tp-child ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    r = json.loads(lines[-1].removeprefix("tp-child "))
    # Before the fix the in-process engine core made this True: the sync then handed a generator to
    # vLLM's worker processes (unpicklable) and check_alive raised, the model-parallel state being theirs.
    assert (r["in_process"], r["backend"]) == (False, "mp")
    tokens = {k: [t for t, _ in r[k]] for k in ("before", "zero", "after")}
    assert tokens["zero"] != tokens["before"]  # the zeroed embeddings reached the workers
    assert tokens["after"] == tokens["before"]  # and the real weights again, to the token
    assert all(abs(a - b) < 1e-5 for (_, la), (_, lb) in zip(r["before"], r["after"]) for a, b in zip(la, lb))
