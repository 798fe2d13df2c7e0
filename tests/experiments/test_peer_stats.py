"""experiments/peer/stats.py and tdist.py: curves over seeds with intervals, and the framework comparison
(each rlreason algorithm against TRL's same algorithm), on synthetic run records."""

from __future__ import annotations

import json
import random
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

from peer import stats, tdist  # noqa: E402


def record(fw: str, seed: int, accs: dict[int, float], s_per_step: float = 1.0) -> dict:
    return {"framework": fw, "seed": seed, "evals": [{"step": k, "accuracy": v} for k, v in accs.items()],
            "s_per_step": s_per_step}


def write(tmp_path: Path, runs: list[dict]) -> Path:
    for r in runs:
        (tmp_path / f"{r['framework']}-s{r['seed']}.json").write_text(json.dumps(r))
    return tmp_path


def test_curves_mean_spread_and_shared_steps(tmp_path):
    runs = [record("trl-rloo", 0, {0: 0.4, 50: 0.5, 100: 0.6}, 2.0),
            record("trl-rloo", 1, {0: 0.4, 50: 0.7, 100: 0.5}, 3.0),
            record("trl-rloo", 2, {0: 0.4, 50: 0.6}, 2.5)]  # seed 2 stopped early: step 100 is not shared
    c = stats.curves(stats.load_runs(write(tmp_path, runs)))["trl-rloo"]
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


def test_t_quantiles_match_tables():
    # Two-sided 95% critical values from any t table; df need not be whole (Welch).
    for df, t in ((1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423), (1e6, 1.9600)):
        assert tdist.t_quantile(0.975, df) == pytest.approx(t, abs=1e-4)
    assert tdist.t_quantile(0.025, 5) == pytest.approx(-2.5706, abs=1e-4)
    assert tdist.t_cdf(tdist.t_quantile(0.9, 7.3), 7.3) == pytest.approx(0.9, abs=1e-9)


def test_spread_interval_of_the_mean():
    a = stats.spread([0.5, 0.7, 0.6])  # mean 0.6, sd 0.1, t(2) = 4.3027
    assert a["ci"] == pytest.approx([0.6 - 4.30265 * 0.1 / 3 ** 0.5, 0.6 + 4.30265 * 0.1 / 3 ** 0.5], abs=1e-5)
    assert stats.spread([0.5])["ci"] is None  # one seed: no interval, not a zero-width one


def test_compare_welch_interval():
    t = stats.compare([0.1, 0.2, 0.3], [0.6, 0.7, 0.8])
    assert t["df"] == pytest.approx(4.0)  # equal variances and sizes: Welch's df is n_a + n_b - 2
    assert t["ci"] == pytest.approx([0.5 - 2.77645 * t["se"], 0.5 + 2.77645 * t["se"]], abs=1e-5)
    # Unequal spreads: df falls towards the noisier side's n - 1, the interval widens.
    u = stats.compare([0.5, 0.5, 0.5, 0.5, 0.51, 0.49], [0.3, 0.7, 0.5, 0.6])
    assert 3.0 <= u["df"] < 3.2
    assert stats.compare([0.5], [0.6, 0.7])["ci"] is None
    assert stats.compare([0.5, 0.5], [0.6, 0.6])["ci"] is None  # no spread: no interval claimed


def test_difference_interval_covers_the_true_gap_at_its_level():
    # 4 seeds a side from normals with different spreads and a gap of 0.03: a 95% interval covers the
    # gap in ~95% of repetitions (an interval from the wrong df or se would miss far more or less often).
    rng = random.Random(0)
    trials, covered = 800, 0
    for _ in range(trials):
        a = [rng.gauss(0.50, 0.02) for _ in range(4)]
        b = [rng.gauss(0.53, 0.05) for _ in range(4)]
        lo, hi = stats.compare(a, b)["ci"]
        covered += lo <= 0.03 <= hi
    assert 0.92 <= covered / trials <= 0.98


def test_each_rlreason_algo_is_compared_with_trls_same_algo():
    runs = [record("trl-grpo", s, {0: 0.4, 10: 0.5 + 0.01 * s}, 2.0 + 0.1 * s) for s in range(3)]
    runs += [record("trl-rloo", s, {0: 0.4, 10: 0.7 + 0.01 * s}) for s in range(3)]
    runs += [record("rlreason-grpo", s, {0: 0.4, 10: 0.3 + 0.01 * s}, 1.0 + 0.1 * s) for s in range(3)]
    runs += [record("rlreason-rloo", s, {0: 0.4, 10: 0.7 + 0.01 * s}) for s in range(3)]
    runs += [record("rlreason-vineppo", s, {0: 0.4, 10: 0.5 + 0.01 * s}) for s in range(3)]
    vs = stats.summarise(runs)["vs_trl"]
    assert {fw: v["baseline"] for fw, v in vs.items()} == {
        "rlreason-grpo": "trl-grpo", "rlreason-rloo": "trl-rloo", "rlreason-vineppo": "trl-grpo"}
    assert vs["rlreason-grpo"]["acc"][10]["diff"] == pytest.approx(-0.2)
    assert vs["rlreason-rloo"]["acc"][10]["diff"] == pytest.approx(0.0)  # not -0.2 (trl-grpo's 0.5)
    assert vs["rlreason-grpo"]["s_per_step"]["diff"] == pytest.approx(-1.0)


def test_summarise_and_table_against_baseline():
    # "trl": a record written before --algo existed, TRL's GRPO run
    runs = [record("trl", s, {0: 0.4, 10: 0.5 + 0.01 * s}) for s in range(3)]
    runs += [record("rlreason-grpo", s, {0: 0.4, 10: 0.3 + 0.01 * s}) for s in range(3)]
    summary = stats.summarise(runs)
    assert set(summary["curves"]) == {"trl-grpo", "rlreason-grpo"}
    t = summary["vs_trl"]["rlreason-grpo"]["acc"][10]
    assert t["diff"] == pytest.approx(-0.2) and t["p_perm"] == pytest.approx(0.1)
    text = stats.table(summary)
    lo, hi = (100 * x for x in t["ci"])
    assert f"-20.0 [{lo:+.1f}, {hi:+.1f}] (p=0.10)" in text and "s/step" in text
    # The same table from summary.json, whose step keys JSON has turned into strings
    assert stats.table(json.loads(json.dumps(summary))) == text


def test_a_seed_recorded_twice_is_refused():
    # A run file from before --algo ("trl") and its renamed rerun ("trl-grpo") are the same framework
    runs = [record("trl", 0, {0: 0.4}), record("trl-grpo", 0, {0: 0.5}), record("trl-grpo", 1, {0: 0.5})]
    with pytest.raises(ValueError, match="seed recorded twice"):
        stats.curves(runs)


def test_plot_one_figure_per_rlreason_run(tmp_path):
    from peer import plot

    runs = [record(fw, s, {0: 0.4, 25: 0.45 + 0.01 * s, 50: 0.5 + 0.02 * s})
            for fw in ("trl-grpo", "rlreason-grpo", "trl-rloo", "rlreason-rloo") for s in range(3)]
    (tmp_path / "runs").mkdir()
    write(tmp_path / "runs", runs)
    paths = plot.main([str(tmp_path)])
    assert sorted(p.name for p in paths) == ["rlreason-grpo.png", "rlreason-rloo.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_plot_draws_the_difference_band_through_a_step_without_spread(tmp_path, monkeypatch):
    # Step 0: every seed of both sides scores the start model's 0.4, so Welch's interval is None there;
    # the band is still drawn (zero width at that step), not dropped for the whole curve
    import matplotlib.axes
    from peer import plot

    runs = [record(fw, s, {0: 0.4, 25: 0.45 + 0.01 * s, 50: 0.5 + 0.02 * s})
            for fw in ("trl-grpo", "rlreason-grpo") for s in range(3)]
    summary = stats.summarise(runs)
    assert summary["vs_trl"]["rlreason-grpo"]["acc"][0]["ci"] is None
    bands = []
    real = matplotlib.axes.Axes.fill_between
    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between",
                        lambda ax, x, lo, hi, **kw: bands.append((list(lo), list(hi))) or real(ax, x, lo, hi, **kw))
    plot.figure(summary, "rlreason-grpo", tmp_path / "f.png")
    assert len(bands) == 3  # two accuracy bands and the difference's
    assert bands[-1][0][0] == bands[-1][1][0] == 0.0
