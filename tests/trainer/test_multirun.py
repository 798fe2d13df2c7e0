"""A Hydra multirun (`python -m rlreason.run -m ...`) out of the box: one dir per run, each with the files
experiments/sweep_report.py reads, on the real vLLM engine, in one process (the local launcher)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from rlreason.config import _sweep_subdir
from rlreason.logger import grouping
from tests.trainer.conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]


def test_a_two_by_one_multirun_gives_each_run_its_own_dir_and_files(tmp_path):
    sweep = tmp_path / "sweep"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    small = [o for o in SMALL if not o.startswith("trainer.eval_every")]  # the preset's: 10
    proc = subprocess.run(
        [sys.executable, "-m", "rlreason.run", "-m", "experiment=sweep", "algo=grpo,ppo", "curriculum=uniform",
         "trainer.iterations=3", *small, f"cache_dir={tmp_path / 'cache'}", "logger=wandb", "logger.mode=offline",
         f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent.parent for p in sweep.glob("*/.hydra/config.yaml"))
    # Named by the overrides, less the preset and the sweep dir, cut with a hash (these are long).
    assert [r.name[:9] for r in runs] == ["algo.mc_r", "algo.mc_r"] and len({r.name for r in runs}) == 2
    assert all(len(r.name) <= 120 and "experiment=" not in r.name for r in runs)
    for run, algo in zip(runs, ("grpo", "ppo"), strict=True):
        assert OmegaConf.load(run / ".hydra/config.yaml").algo.name == algo
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["iterations"] == 3 and summary["eval_questions"] == 8
        with sqlite3.connect(run / "stats.sqlite") as db:
            phases = dict(db.execute("SELECT phase, COUNT(*) FROM attempts GROUP BY phase").fetchall())
        # eval: 8 questions x 2 samples, eval_greedy: one response each, at iterations 0 and 3 (the last)
        assert phases["eval"] == 2 * 8 * 2 and phases["eval_greedy"] == 2 * 8
        # The preset keeps every checkpoint (trainer.keep_checkpoints=null; the default keeps 2).
        assert sorted(p.name for p in (run / "checkpoints").glob("iter_*")) == [
            "iter_000001", "iter_000002", "iter_000003"]
        assert any(run.glob("wandb/offline-run-*")), "logger=wandb wrote no offline run"


def test_run_dir_names_stay_one_short_path_component():
    assert _sweep_subdir("algo=ppo,seed=1") == "algo=ppo,seed=1"
    long = "cache_dir=/tmp/x," + ",".join(f"k{i}=v" for i in range(60))
    a, b = _sweep_subdir(long), _sweep_subdir(long + "1")
    assert len(a) == 120 and "/" not in a and a != b and a[:100] == b[:100]


def test_wandb_groups_a_sweep_by_algo_and_curriculum():
    cfg = OmegaConf.create({"group": "my-sweep"})
    config = {"algo": {"name": "vineppo"}, "curriculum": {"name": "learnability"}, "data": {"name": "arith"}}
    assert grouping(cfg, config) == {"group": "my-sweep", "job_type": "vineppo-learnability",
                                     "tags": ["algo=vineppo", "curriculum=learnability", "data=arith"]}
    # No group set and no Hydra multirun running: no group.
    assert grouping(OmegaConf.create({"group": None}), config)["group"] is None
