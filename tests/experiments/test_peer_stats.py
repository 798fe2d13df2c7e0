"""experiments/peer/stats.py: curves over seeds and the framework comparison, on synthetic run records."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

from peer import stats  # noqa: E402


def record(fw: str, seed: int, accs: dict[int, float], s_per_step: float = 1.0) -> dict:
    return {"framework": fw, "seed": seed, "evals": [{"step": k, "accuracy": v} for k, v in accs.items()],
            "s_per_step": s_per_step}


def write(tmp_path: Path, runs: list[dict]) -> Path:
    for r in runs:
        (tmp_path / f"{r['framework']}-s{r['seed']}.json").write_text(json.dumps(r))
    return tmp_path


def test_curves_mean_spread_and_shared_steps(tmp_path):
    runs = [record("trl", 0, {0: 0.4, 50: 0.5, 100: 0.6}, 2.0), record("trl", 1, {0: 0.4, 50: 0.7, 100: 0.5}, 3.0),
            record("trl", 2, {0: 0.4, 50: 0.6}, 2.5)]  # seed 2 stopped early: step 100 is not shared
    c = stats.curves(stats.load_runs(write(tmp_path, runs)))["trl"]
    assert sorted(c["acc"]) == [0, 50]
    a = c["acc"][50]
    assert a["mean"] == pytest.approx(0.6) and a["std"] == pytest.approx(statistics.stdev([0.5, 0.7, 0.6]))
    assert (a["min"], a["max"], a["n"]) == (0.5, 0.7, 3)
    assert c["acc"][0]["std"] == 0.0
    assert c["s_per_step"]["mean"] == pytest.approx(2.5) and c["seeds"] == [0, 1, 2]


def test_compare_permutation_p_value():
    # Fully separated groups of 3: only the observed split and its mirror are as extreme: p = 2/20.
    t = stats.compare([0.1, 0.2, 0.3], [0.6, 0.7, 0.8])
    assert t["diff"] == pytest.approx(0.5) and t["p_perm"] == pytest.approx(0.1)
    assert t["se"] == pytest.approx((2 * 0.01 / 3) ** 0.5)
    # Identical groups: every split is at least as extreme as a zero difference.
    assert stats.compare([0.5, 0.6], [0.5, 0.6])["p_perm"] == 1.0


def test_summarise_and_table_against_baseline():
    runs = [record("trl", s, {0: 0.4, 10: 0.5 + 0.01 * s}) for s in range(3)]
    runs += [record("rlreason-grpo", s, {0: 0.4, 10: 0.3 + 0.01 * s}) for s in range(3)]
    summary = stats.summarise(runs)
    t = summary["vs_trl"]["rlreason-grpo"][10]
    assert t["diff"] == pytest.approx(-0.2) and t["p_perm"] == pytest.approx(0.1)
    text = stats.table(summary)
    assert "rlreason-grpo" in text and "-20.0" in text and "s/step" in text
