"""experiments/train_test.py: test accuracy at a common training accuracy, per group, from synthetic run
dirs whose test accuracy is a known line of their training accuracy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from tests.experiments.test_sweep_report import ROOT, base_cfg

sys.path.insert(0, str(ROOT / "experiments"))

import train_test  # noqa: E402


def write_run(run_dir: Path, algo: str, curriculum: str, seed: int, offset: float) -> None:
    """60 iterations; train/success climbs from a seed-dependent start; eval every 10 iterations with
    greedy accuracy = offset + 0.5 x (training accuracy over the last 10 iterations) + small noise."""
    cfg = OmegaConf.create(base_cfg(algo, curriculum, 50))
    cfg.seed, cfg.trainer.iterations = seed, 60
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    rng = np.random.default_rng(seed)
    start = 0.2 + 0.05 * seed
    train = {it: start + 0.005 * it + rng.normal(0, 0.02) for it in range(1, 61)}
    rows = []
    for it in range(61):
        row: dict = {"iteration": it}
        if it:
            row["train/success"] = train[it]
        if it % 10 == 0:
            window = np.mean([train[i] for i in range(max(1, it - 9), it + 1)]) if it else start
            acc = offset + 0.5 * window + rng.normal(0, 0.003)
            row |= {"eval/greedy": acc, "eval/mean@4": acc, "eval/accuracy": acc}
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_ranks_groups_by_test_accuracy_at_equal_training_accuracy(tmp_path, capsys):
    for s in range(3):
        write_run(tmp_path / f"ppo-s{s}", "ppo", "uniform", s, offset=0.20)
        write_run(tmp_path / f"vine-s{s}", "vineppo", "uniform", s, offset=0.30)
        write_run(tmp_path / f"same-s{s}", "grpo", "uniform", s, offset=0.20)
        write_run(tmp_path / f"lilo-s{s}", "vineppo", "learnability", s, offset=0.50)
    out = tmp_path / "out"
    assert train_test.main([str(tmp_path), "-o", str(out)]) == 0
    report = json.loads((out / "train_test.json").read_text())
    lo, hi = report["overlap"]
    assert lo <= report["level"] <= hi
    g = report["groups"]
    assert abs(g["ppo/uniform"]["test_at_level"] - (0.20 + 0.5 * report["level"])) < 0.01
    vine = g["vineppo/uniform"]
    assert abs(vine["minus_reference"] - 0.10) < 0.01
    assert 0 < vine["minus_reference_ci"][0] < 0.10 < vine["minus_reference_ci"][1]
    same = g["grpo/uniform"]
    assert abs(same["minus_reference"]) < 0.01 and same["minus_reference_ci"][0] < 0 < same["minus_reference_ci"][1]
    # A curriculum that picks its training questions by solve rate is shown, not ranked.
    assert report["flagged"] == ["vineppo/learnability"] and "vineppo/learnability" not in g
    assert (out / "train_test.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| vineppo/uniform | 3 |" in printed and "not ranked" in printed


def test_without_training_rows_it_says_so(tmp_path, capsys):
    write_run(tmp_path / "ppo-s0", "ppo", "uniform", 0, offset=0.2)
    rows = [json.loads(x) for x in (tmp_path / "ppo-s0" / "metrics.jsonl").read_text().splitlines()]
    (tmp_path / "ppo-s0" / "metrics.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "train/success"}) + "\n" for r in rows))
    assert train_test.main([str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "no group with a training accuracy" in capsys.readouterr().err
