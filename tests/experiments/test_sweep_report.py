"""experiments/sweep_report.py and experiments/sweep/: the results page from synthetic run dirs (a real
composed config, metrics.jsonl, summary.json and a real stats store per run)."""

from __future__ import annotations

import json
import math
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlreason.config import register_configs
from rlreason.curriculum.store import Attempt, StatsStore
from rlreason.data.loaders import load_split

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import sweep_report  # noqa: E402
from sweep import plots, runs, stats  # noqa: E402

N_TEST = 50
# 4 training questions per iteration, 4 attempts each, hits per question: one solved by all, two by none.
TRAIN_HITS = [4, 0, 2, 0]


@cache
def base_cfg(algo: str, curriculum: str, n_test: int):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=["experiment=sweep", f"algo={algo}", f"curriculum={curriculum}",
                                           "data.arith.n_train=100", f"data.arith.n_test={n_test}"])
    return OmegaConf.to_yaml(cfg)


def questions_of(n_test: int = N_TEST):
    return load_split(OmegaConf.create(base_cfg("ppo", "uniform", n_test)).data, "test")


def write_run(run_dir: Path, algo: str, curriculum: str, seed: int, greedy: dict[int, float], *,
              mean: dict[int, float] | None = None, s_per_iter: float = 1.0, planned: int = 30,
              n_test: int = N_TEST, store_greedy: bool = True, lr: float | None = None,
              train_hits: list[int] = TRAIN_HITS) -> Path:
    """A run evaluated at the iterations of `greedy` (accuracy rounded to k/n_test: the first k test
    questions right), trained to the last of them at `s_per_iter` training seconds per iteration."""
    cfg = OmegaConf.create(base_cfg(algo, curriculum, n_test))
    cfg.seed, cfg.trainer.iterations = seed, planned
    if lr is not None:
        cfg.learner.lr = lr
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    qs = [q.id for q in questions_of(n_test)]
    mean = mean or greedy
    store = StatsStore(run_dir / "stats.sqlite", f"{algo}-{curriculum}-s{seed}")
    rows, last = [], max(greedy)
    for it in range(last + 1):
        row: dict = {"iteration": it}
        if it > 0:
            # Cumulative seconds per phase; eval and checkpoint are large so that counting them would show.
            row |= {"train/reward": 0.3 + 0.01 * it, "learner/entropy": 1.0 / it, "learner/kl_ref": 0.01 * it,
                    "learner/grad_norm": 1.0, "time/selection": 0.1 * s_per_iter * it,
                    "time/rollout": 0.4 * s_per_iter * it, "time/learner": 0.3 * s_per_iter * it,
                    "time/grading": 0.1 * s_per_iter * it, "time/sync": 0.1 * s_per_iter * it,
                    "time/eval": 1000.0 * (1 + it // 10), "time/checkpoint": 500.0 * (it // 10),
                    "time/sync_last_s": 777.0}
            store.add([Attempt(f"t{it}-{i}", it, "train", float(a < h), 10)
                       for i, h in enumerate(train_hits) for a in range(4)])
        if it in greedy:
            kg, km = round(greedy[it] * n_test), round(mean[it] * n_test)
            row |= {"eval/greedy": kg / n_test, "eval/mean@4": km / n_test, "eval/accuracy": kg / n_test}
            store.add([Attempt(q, it, "eval", float(i < km), 10) for i, q in enumerate(qs) for _ in range(4)])
            if store_greedy:
                store.add([Attempt(q, it, "eval_greedy", float(i < kg), 10) for i, q in enumerate(qs)])
        if it in greedy or it == last:  # fewer (fsync'd) transactions: a commit writes all buffered iterations
            store.commit(it)
        rows.append(row)
    store.close()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if last >= planned:
        (run_dir / "summary.json").write_text(json.dumps({"eval_questions": n_test, "iterations": last}))
    return run_dir


PPO = {0: [.40, .50, .56, .60], 1: [.40, .52, .60, .62], 2: [.40, .48, .54, .58]}  # seed mean best .60 @30
VINE = {0: [.40, .60, .64, .66], 1: [.40, .56, .62, .64], 2: [.40, .50, .54]}  # seed 2 stops at 20
LILO = {0: [.40, .60, .62, .64], 1: [.40, .50, .60, .62], 2: [.40, .44, .50, .52]}


def evals(accs: list[float]) -> dict[int, float]:
    return {10 * i: a for i, a in enumerate(accs)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ppo/uniform (2 s/iteration), vineppo/uniform (5 s/iteration, one seed unfinished), ppo/learnability;
    nested at different depths, one run linked in from elsewhere. Read-only for the tests."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    top = tmp_path / "sweep"
    for seed in range(3):
        write_run(top / f"ppo-u-s{seed}", "ppo", "uniform", seed, evals(PPO[seed]), s_per_iter=2.0)
        write_run(top / "deeper" / f"vine-u-s{seed}", "vineppo", "uniform", seed, evals(VINE[seed]), s_per_iter=5.0)
    for seed in range(2):
        write_run(top / f"lilo-s{seed}", "ppo", "learnability", seed, evals(LILO[seed]), s_per_iter=2.0)
    write_run(tmp_path / "elsewhere" / "lilo-s2", "ppo", "learnability", 2, evals(LILO[2]), s_per_iter=2.0)
    (top / "lilo-s2").symlink_to(tmp_path / "elsewhere" / "lilo-s2")
    return top


def loaded(top: Path):
    groups = runs.group_runs(runs.load_runs([top]))
    return groups, {g: [stats.eval_points(r) for r in rs] for g, rs in groups.items()}


def test_groups_by_algo_and_curriculum_and_band_is_min_max_over_seeds(sweep):
    groups, points = loaded(sweep)
    assert list(groups) == ["ppo/learnability", "ppo/uniform", "vineppo/uniform"]
    assert [r.seed for r in groups["ppo/learnability"]] == [0, 1, 2]  # the linked run is found
    c = {p["iteration"]: p for p in stats.curve(points["ppo/uniform"], "greedy")}
    assert (c[20]["min"], c[20]["max"], c[20]["n"]) == (0.54, 0.60, 3)
    assert c[20]["mean"] == pytest.approx(np.mean([.56, .60, .54]))
    v = {p["iteration"]: p for p in stats.curve(points["vineppo/uniform"], "greedy")}
    assert v[30]["n"] == 2 and v[30]["min"] == 0.64  # the unfinished seed is in up to iteration 20 only
    assert not groups["vineppo/uniform"][2].finished and groups["vineppo/uniform"][0].finished


def test_training_seconds_exclude_eval_and_checkpoint(sweep):
    row = {"iteration": 3, "time/rollout": 2.0, "time/learner": 1.5, "time/eval": 50.0, "time/checkpoint": 9.0,
           "time/sync_last_s": 4.0, "time/grading": 0.5}
    assert runs.train_seconds(row) == 4.0
    # A run that logs its training wall-clock is read by it (one step off, the phases overlap).
    assert runs.train_seconds(row | {"time/train_wall": 3.0}) == 3.0
    _, points = loaded(sweep)
    assert [p.seconds for p in points["vineppo/uniform"][0]] == pytest.approx([0, 50, 100, 150])


def test_iterations_to_target_speedup_and_unreached_seed(sweep):
    groups, points = loaded(sweep)
    t = stats.speedup(groups, points, "greedy", "ppo/uniform")
    assert t["target"] == pytest.approx(0.60) and t["target_iteration"] == 30
    ref, vine = t["groups"]["ppo/uniform"], t["groups"]["vineppo/uniform"]
    # ppo: seed 0 at 30, seed 1 at 20, seed 2 (.58 at best) never; 2 s per iteration.
    assert [r["iteration"] for r in ref["per_run"]] == [30, 20, None]
    assert ref["iterations"] == {"mean": 25.0, "min": 20, "max": 30} and ref["seconds"]["mean"] == pytest.approx(50)
    # vineppo: seed 0 at 10, seed 1 at 20, seed 2 stopped at 20 below target; 5 s per iteration.
    assert (vine["reached"], vine["runs"]) == (2, 3)
    assert vine["iterations"] == {"mean": 15.0, "min": 10, "max": 20}
    assert vine["seconds"] == pytest.approx({"mean": 75.0, "min": 50.0, "max": 100.0})
    assert vine["speedup_iterations"] == pytest.approx(25 / 15)
    assert vine["speedup_seconds"] == pytest.approx(50 / 75)  # fewer steps, but slower steps
    assert ref["speedup_iterations"] == pytest.approx(1.0)
    # The interval resamples each group's reaching seeds: ppo {30, 20} against vineppo {10, 20}; its ends
    # are the extreme resamples' ratios (20/20 = 1 and 30/10 = 3) and it holds the point estimate.
    lo, hi = vine["speedup_iterations_ci"]
    assert lo == pytest.approx(1.0) and hi == pytest.approx(3.0) and lo < vine["speedup_iterations"] < hi
    lo, hi = ref["speedup_iterations_ci"]
    assert lo < 1.0 < hi  # the reference against itself, resampled independently: not a zero-width 1


def test_ratio_ci_is_none_without_seeds_and_exact_without_spread():
    assert stats.ratio_ci([], [1.0]) is None and stats.ratio_ci([1.0], []) is None
    assert stats.ratio_ci([4.0, 4.0], [2.0, 2.0, 2.0]) == pytest.approx((2.0, 2.0))


def test_curriculum_target_is_the_same_algos_uniform_best(sweep, tmp_path):
    assert sweep_report.main([str(sweep), "-o", str(tmp_path / "out"), "--metric", "greedy"]) == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    (t,) = rep["curriculum_speedup"]
    assert (t["reference"], list(t["groups"])) == ("ppo/uniform", ["ppo/uniform", "ppo/learnability"])
    lilo = t["groups"]["ppo/learnability"]
    assert [r["iteration"] for r in lilo["per_run"]] == [10, 20, None]  # .60 at 10, at 20, never
    assert lilo["speedup_iterations"] == pytest.approx(25 / 15)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| vineppo/uniform | 2/3; not reached: s2 (ran to 20) |" in md
    assert "vineppo/uniform seed 2 is unfinished, at iteration 20 of 30" in md


def test_equal_iterations_and_equal_wallclock(sweep):
    _, points = loaded(sweep)
    e = stats.equal_iterations(points, "greedy")
    assert e["iterations"] == [0, 10, 20, 30]
    assert e["groups"]["vineppo/uniform"][3]["n"] == 2
    w = stats.equal_wallclock(points, "greedy")
    assert w["budget_s"] == pytest.approx(60)  # ppo's last eval: 30 iterations at 2 s
    # vineppo within 60 s: iteration 10 (50 s) for every seed.
    assert w["groups"]["vineppo/uniform"]["mean"] == pytest.approx(np.mean([.60, .56, .50]))
    assert w["groups"]["vineppo/uniform"]["iteration"] == 10
    assert w["groups"]["ppo/uniform"]["mean"] == pytest.approx(np.mean([.60, .62, .58]))
    # A budget of 100 s: vineppo at iteration 20 (seed 2 stopped there), ppo at its last eval.
    w = stats.equal_wallclock(points, "greedy", budget=100.0)
    assert w["budget_s"] == 100.0 and w["groups"]["vineppo/uniform"]["iteration"] == 20
    assert w["groups"]["vineppo/uniform"]["mean"] == pytest.approx(np.mean([.64, .62, .54]))


def test_budgets_give_one_equal_wallclock_table_each(sweep, tmp_path):
    assert sweep_report.main([str(sweep), "-o", str(tmp_path), "--metric", "greedy", "--budget", "50",
                              "--budget", "100"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert [w["greedy"]["budget_s"] for w in rep["equal_wallclock"]] == [50.0, 100.0]
    assert (tmp_path / "report.md").read_text().count("training seconds (--budget)") == 2


def test_noise_half_width_and_spread_over_seeds(sweep):
    groups, points = loaded(sweep)
    z = stats.noise(groups, points, "greedy")
    assert z["questions"] == [N_TEST] and z["evals"] == {"bootstrap": 35}
    # Seed spread: the std over seeds per group and trained iteration (iteration 0 is one starting policy).
    stds = [np.std([accs[i] for accs in data.values() if len(accs) > i], ddof=1)
            for data in (PPO, VINE, LILO) for i in (1, 2, 3)]
    assert z["seed_std"] == pytest.approx(np.median(stds))
    half = [(p.ci["greedy"][1] - p.ci["greedy"][0]) / 2 for ps in points.values() for run in ps for p in run]
    assert z["half_width"]["bootstrap"] == pytest.approx(np.median(half))


def test_bootstrap_contains_estimate_and_narrows_with_questions():
    rng = np.random.default_rng(1)
    small, large = ((rng.random(n) < 0.5).astype(float) for n in (50, 2000))
    for v in (small, large):
        lo, hi = stats.bootstrap_ci(v)
        assert lo < v.mean() < hi
    w_small, w_large = (np.subtract(*stats.bootstrap_ci(v)[::-1]) for v in (small, large))
    assert w_large < w_small / 4  # ~ 1/sqrt(n): sqrt(40) = 6.3
    binom = 2 * stats.Z95 * math.sqrt(large.mean() * (1 - large.mean()) / 2000)
    assert w_large == pytest.approx(binom, rel=0.15)
    assert stats.bootstrap_ci(large) == stats.bootstrap_ci(large)  # default_rng(0) each time


def test_greedy_interval_falls_back_to_binomial_without_stored_greedy(tmp_path):
    new = runs.load_run(write_run(tmp_path / "new", "ppo", "uniform", 0, {0: .5, 10: .6}, planned=10))
    old = runs.load_run(write_run(tmp_path / "old", "ppo", "uniform", 0, {0: .5, 10: .6}, planned=10,
                                  store_greedy=False))
    p_new, p_old = stats.eval_points(new)[1], stats.eval_points(old)[1]
    assert p_new.method == {"greedy": "bootstrap", "mean": "bootstrap"}
    assert p_old.method == {"greedy": "binomial", "mean": "bootstrap"}
    assert p_old.ci["greedy"] == pytest.approx(stats.binomial_ci(0.6, N_TEST))
    assert p_new.ci["greedy"][0] < 0.6 < p_new.ci["greedy"][1]


def test_solve_fractions_and_level_accuracy(tmp_path):
    a = runs.load_run(write_run(tmp_path / "a", "ppo", "uniform", 0, {0: .5, 3: .6}, planned=3))
    b = runs.load_run(write_run(tmp_path / "b", "ppo", "uniform", 1, {0: .5, 3: .6}, planned=3,
                                train_hits=[4, 4, 4, 1]))
    s = stats.solve_rates([a, b])
    assert s["all_solved"]["iterations"] == [1, 2, 3]
    assert s["all_solved"]["mean"] == pytest.approx([(1 / 4 + 3 / 4) / 2] * 3)
    assert s["none_solved"]["mean"] == pytest.approx([(2 / 4 + 0) / 2] * 3)
    assert s["none_solved"]["overall"] == pytest.approx(0.25)
    # Greedy by level at iteration 3: the first 30 of the 50 test questions right.
    qs = questions_of()
    want: dict[int, list[float]] = {}
    for i, q in enumerate(qs):
        want.setdefault(q.level, []).append(float(i < 30))
    la = stats.level_accuracy([a, b])
    assert la["phase"] == "eval_greedy"
    assert {lv: s[3] for lv, s in la["levels"].items()} == pytest.approx({lv: np.mean(v) for lv, v in want.items()})


def test_moving_average_shrinks_at_the_ends():
    assert stats.moving_average(np.array([0, 0, 5, 0, 0, 10.0]), 5).tolist() == pytest.approx(
        [5 / 3, 5 / 4, 1, 3, 15 / 4, 10 / 3])


def test_writes_figures_and_reports_and_warns_on_mixed_settings(tmp_path, capsys, monkeypatch):
    top = tmp_path / "sweep"
    write_run(top / "a", "ppo", "uniform", 0, {0: .5, 10: .6}, planned=10, lr=1e-5)
    write_run(top / "b", "ppo", "uniform", 1, {0: .5, 10: .7}, planned=10, lr=3e-5)
    write_run(top / "c", "vineppo", "uniform", 0, {0: .5, 10: .8}, planned=10)  # one seed: no band
    bands: list[int] = []
    real = plots.plt.Axes.fill_between
    monkeypatch.setattr(plots.plt.Axes, "fill_between", lambda self, *a, **k: bands.append(1) or real(self, *a, **k))
    out = tmp_path / "out"
    assert sweep_report.main([str(top), "-o", str(out), "--label", "test sweep"]) == 0
    assert len(bands) == 4  # ppo/uniform in each of the 4 panels, vineppo/uniform in none
    for name in ("curves.png", "solve_rates.png", "diagnostics.png", "report.md", "report.json"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr()
    assert "# Sweep report: test sweep" in printed.out
    assert "learner.lr = 1e-05, 3e-05" in printed.err
    rep = json.loads((out / "report.json").read_text())
    assert "learner.lr" in " ".join(rep["notes"]) and rep["questions"] == [N_TEST]
    assert [t["metric"] for t in rep["speedup"]] == ["greedy", "mean"]


def test_empty_dir_exits_2_with_a_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert sweep_report.main([str(tmp_path / "empty"), "-o", str(tmp_path / "out")]) == 2
    assert "no run dirs" in capsys.readouterr().err
    assert sweep_report.main([str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_unknown_reference_group_exits_2_naming_the_groups(sweep, tmp_path, capsys):
    assert sweep_report.main([str(sweep), "-o", str(tmp_path / "out"), "--reference", "grpo/uniform"]) == 2
    err = capsys.readouterr().err
    assert "--reference grpo/uniform: no such group" in err and "vineppo/uniform" in err
    assert not (tmp_path / "out").exists()


def test_paired_difference_is_taken_at_the_last_common_eval_on_shared_questions(sweep):
    groups, _ = loaded(sweep)
    d = stats.paired_difference(groups["vineppo/uniform"], groups["ppo/uniform"], "greedy")
    # vineppo seed 2 stopped at 20, so both groups are compared at 20: (.64+.62+.54)/3 - (.56+.60+.54)/3
    assert d["iteration"] == 20 and d["questions"] == N_TEST
    assert d["difference"] == pytest.approx((0.64 + 0.62 + 0.54) / 3 - (0.56 + 0.60 + 0.54) / 3)
    lo, hi = d["ci"]
    assert lo <= d["difference"] <= hi and hi - lo < 0.2
    assert d["seed_std"][0] == pytest.approx(np.std([0.64, 0.62, 0.54], ddof=1))
    # A difference of a group with itself is zero with a zero-width interval: pairing cancels question noise.
    same = stats.paired_difference(groups["ppo/uniform"], groups["ppo/uniform"], "greedy")
    assert same["difference"] == 0 and same["ci"] == (0.0, 0.0)


def test_by_a_config_key_splits_groups_and_names_them(tmp_path):
    for lr in (1e-5, 3e-5):
        write_run(tmp_path / f"ppo-{lr}", "ppo", "uniform", 0, evals(PPO[0]), lr=lr)
    names = list(runs.group_runs(runs.load_runs([tmp_path], ("learner.lr",))))
    assert names == ["ppo/uniform learner.lr=1e-05", "ppo/uniform learner.lr=3e-05"]
    assert list(runs.group_runs(runs.load_runs([tmp_path]))) == ["ppo/uniform"]  # one group, two configs


def test_by_key_names_only_the_algo_whose_runs_differ_in_it(tmp_path):
    write_run(tmp_path / "ppo", "ppo", "uniform", 0, evals(PPO[0]), lr=3e-5)
    for lr in (1e-5, 3e-5):
        write_run(tmp_path / f"vine-{lr}", "vineppo", "uniform", 0, evals(PPO[0]), lr=lr)
    names = list(runs.group_runs(runs.load_runs([tmp_path], ("learner.lr",))))
    assert names == ["ppo/uniform", "vineppo/uniform learner.lr=1e-05", "vineppo/uniform learner.lr=3e-05"]


def test_phase_seconds_are_the_last_rows_training_phases_per_group(sweep):
    from sweep.report import phase_seconds

    groups, _ = loaded(sweep)
    ppo = phase_seconds(groups["ppo/uniform"])  # 2 s/iteration: 0.1 / 0.4 / 0.3 / 0.1 / 0.1 of it, 30 iterations
    assert ppo["runs"] == 3 and ppo["iterations"] == 30
    assert ppo["phases"] == pytest.approx({"selection": 6.0, "rollout": 24.0, "learner": 18.0, "grading": 6.0,
                                           "sync": 6.0})
    assert "eval" not in ppo["phases"] and "checkpoint" not in ppo["phases"]
    assert ppo["per_iteration"] == pytest.approx(2.0)
    vine = phase_seconds(groups["vineppo/uniform"])  # seed 2 stopped at 20: its own last row counts
    assert vine["iterations"] == pytest.approx(80 / 3) and vine["per_iteration"] == pytest.approx(5.0)


def test_seeds_and_questions_interval_widens_with_the_seeds_spread_and_pairs_by_seed():
    rng = np.random.default_rng(1)
    questions = rng.random(200) < 0.5
    # Group a: each seed is b's same seed plus 2 points on the same questions, seeds spread 10 points apart.
    base = np.array([np.roll(questions, 7 * k) for k in range(4)], dtype=float)
    shift = np.array([[float(i < 4) for i in range(200)]] * 4)  # 4 more questions right: +2 points
    ma, mb = np.maximum(base, shift), base
    seed_offsets = np.array([0.0, 0.1, -0.1, 0.05])[:, None]
    ma, mb = ma + seed_offsets, mb + seed_offsets  # a seed's luck lifts both groups alike
    diff = ma.mean() - mb.mean()
    paired = stats.seeds_and_questions_ci(ma, mb, paired=True)
    unpaired = stats.seeds_and_questions_ci(ma, mb, paired=False)
    assert paired[0] <= diff <= paired[1] and unpaired[0] <= diff <= unpaired[1]
    # Pairing cancels the seeds' shared luck; drawing them independently does not.
    assert unpaired[1] - unpaired[0] > 2 * (paired[1] - paired[0])
    same = stats.seeds_and_questions_ci(mb, mb, paired=True)
    assert same == (0.0, 0.0)


def test_paired_difference_reports_both_intervals_and_whether_seeds_pair(sweep, tmp_path):
    groups, _ = loaded(sweep)
    d = stats.paired_difference(groups["vineppo/uniform"], groups["ppo/uniform"], "greedy")
    assert d["paired_by_seed"] and d["ci_seeds"][0] <= d["difference"] <= d["ci_seeds"][1]
    # The seeds differ (std about 5 points), so the interval over seeds and questions is the wider one.
    assert d["ci_seeds"][1] - d["ci_seeds"][0] > d["ci"][1] - d["ci"][0]
    assert sweep_report.main([str(sweep), "-o", str(tmp_path / "out"), "--metric", "greedy"]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "95% interval, seeds and questions" in md and " paired |" in md


def test_a_one_step_off_run_without_train_wall_is_flagged(tmp_path):
    a = write_run(tmp_path / "a", "grpo", "uniform", 0, {0: .5, 10: .6}, planned=10)
    b = write_run(tmp_path / "b", "grpo", "uniform", 1, {0: .5, 10: .6}, planned=10)
    for d in (a, b):
        cfg = OmegaConf.load(d / ".hydra" / "config.yaml")
        cfg.trainer.async_level = 1
        OmegaConf.save(cfg, d / ".hydra" / "config.yaml")
    rows = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    rows[-1]["time/train_wall"] = 3.0
    (b / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (group, rs), = runs.group_runs(runs.load_runs([tmp_path])).items()
    notes = runs.config_warnings(group, rs)
    assert len(notes) == 1 and "seeds [0] ran one step off before" in notes[0]
    assert stats.eval_points(rs[1])[-1].seconds == 3.0
    from sweep.report import phase_seconds

    # The total is seed 0's phase sum (1 s/iteration x 10) and seed 1's wall-clock, less than its phases' sum.
    t = phase_seconds(rs)
    assert t["total"] == pytest.approx((10.0 + 3.0) / 2) and not t["wall"]
    assert sum(t["phases"].values()) == pytest.approx(10.0)
    assert phase_seconds(rs[1:])["wall"]
