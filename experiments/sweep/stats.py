"""The numbers of the results page: per-eval intervals, curves over seeds, steps and seconds to a target
accuracy, accuracy at equal iterations and equal wall-clock, and training solve rates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .runs import Run, question_levels, train_seconds

METRICS = ("greedy", "mean")  # eval/greedy and eval/mean@n
PHASE = {"greedy": "eval_greedy", "mean": "eval"}  # the store phase holding a metric's per-question rewards
BOOTSTRAP_RESAMPLES = 2000
SMOOTH = 5  # iterations in the moving average of per-iteration training series (solve rates, reward)
Z95 = 1.959963984540054


def metric_key(metric: str, samples: int) -> str:
    return "eval/greedy" if metric == "greedy" else f"eval/mean@{samples}"


def metric_name(metric: str, samples: int) -> str:
    return "greedy" if metric == "greedy" else f"mean@{samples}"


def bootstrap_ci(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `values` (one per question), resampling questions with
    replacement; each interval draws from its own default_rng(seed), so it does not depend on call order."""
    values = np.asarray(values, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    lo, hi = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    return float(lo), float(hi)


def binomial_ci(p: float, n: int) -> tuple[float, float]:
    """Normal-approximation 95% interval of a proportion over n questions (when per-question rewards are
    missing: runs from before the store kept greedy responses)."""
    half = Z95 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))
    return p - half, p + half


@dataclass
class EvalPoint:
    iteration: int
    seconds: float  # training wall-clock (no eval, no checkpoint) up to this eval
    value: dict[str, float]  # metric -> accuracy
    ci: dict[str, tuple[float, float]]  # metric -> 95% interval over questions
    method: dict[str, str]  # metric -> "bootstrap" | "binomial"


def eval_points(run: Run) -> list[EvalPoint]:
    out = []
    n_questions = run.questions or 1
    for row in run.eval_rows:
        it, p = row["iteration"], EvalPoint(row["iteration"], train_seconds(row), {}, {}, {})
        for m in METRICS:
            key = metric_key(m, run.samples)
            if row.get(key) is None:
                continue
            p.value[m] = float(row[key])
            per_q = run.per_question.get(PHASE[m], {}).get(it)
            if per_q:
                p.ci[m], p.method[m] = bootstrap_ci(np.fromiter(per_q.values(), float)), "bootstrap"
            else:
                p.ci[m], p.method[m] = binomial_ci(p.value[m], n_questions), "binomial"
        out.append(p)
    return out


def spread(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max())}


def curve(points: list[list[EvalPoint]], metric: str) -> list[dict[str, Any]]:
    """Per eval iteration of a group: the spread over the seeds evaluated there (a seed that stopped early
    drops out of the later points), their mean training seconds, and the mean over seeds of each run's
    interval, as offsets below/above its own point (err_lo, err_hi) and as a half-width."""
    by_it: dict[int, list[EvalPoint]] = {}
    for run_points in points:
        for p in run_points:
            if metric in p.value:
                by_it.setdefault(p.iteration, []).append(p)
    out = []
    for it in sorted(by_it):
        ps = by_it[it]
        out.append({"iteration": it, **spread([p.value[metric] for p in ps]),
                    "seconds": float(np.mean([p.seconds for p in ps])),
                    "err_lo": float(np.mean([p.value[metric] - p.ci[metric][0] for p in ps])),
                    "err_hi": float(np.mean([p.ci[metric][1] - p.value[metric] for p in ps])),
                    "half": float(np.mean([(p.ci[metric][1] - p.ci[metric][0]) / 2 for p in ps]))})
    return out


def best_of(c: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The point of a group curve with the best seed mean, among the iterations every seed reached."""
    full = [p for p in c if p["n"] == max(q["n"] for q in c)] if c else []
    return max(full, key=lambda p: p["mean"]) if full else None


def first_reach(points: list[EvalPoint], metric: str, target: float) -> EvalPoint | None:
    # A tolerance for accuracies that are the same fraction computed in another order.
    return next((p for p in points if p.value.get(metric, -1.0) >= target - 1e-9), None)


def _stats(xs: list[float]) -> dict[str, float] | None:
    return {"mean": float(np.mean(xs)), "min": float(min(xs)), "max": float(max(xs))} if xs else None


def _ratio(ref: dict | None, mine: dict | None) -> float | None:
    return ref["mean"] / mine["mean"] if ref and mine and mine["mean"] > 0 else None


def ratio_ci(ref: list[float], mine: list[float], resamples: int = BOOTSTRAP_RESAMPLES,
             seed: int = 0) -> tuple[float, float] | None:
    """95% bootstrap interval of mean(ref) / mean(mine), the seeds of each group resampled on their own.
    Over 3 seeds it is wide and coarse (few distinct resamples), but it says how far one seed moves a
    speed-up; None when either side has no seed."""
    if not ref or not mine:
        return None
    rng = np.random.default_rng(seed)
    a = rng.choice(np.asarray(ref, float), (resamples, len(ref))).mean(1)
    b = rng.choice(np.asarray(mine, float), (resamples, len(mine))).mean(1)
    r = a / np.maximum(b, 1e-12)
    return float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))


def speedup(groups: dict[str, list[Run]], points: dict[str, list[list[EvalPoint]]], metric: str,
            reference: str, target_group: str | None = None, rows: list[str] | None = None) -> dict[str, Any] | None:
    """Iterations and training seconds for each run to reach the best seed-mean accuracy of
    `target_group` (default: the reference), per group: mean and min-max over the seeds that reached it,
    and the speed-up reference / group (> 1: the group gets there faster). None without a target."""
    target_group = target_group or reference
    best = best_of(curve(points[target_group], metric))
    if best is None:
        return None
    table: dict[str, Any] = {"metric": metric, "reference": reference, "target_group": target_group,
                             "target": best["mean"], "target_iteration": best["iteration"], "groups": {}}
    for g in rows or list(groups):
        per_run = []
        for run, ps in zip(groups[g], points[g], strict=True):
            hit = first_reach(ps, metric, best["mean"])
            per_run.append({"seed": run.seed, "path": str(run.path), "last_iteration": run.last_iteration,
                            "iteration": hit.iteration if hit else None, "seconds": hit.seconds if hit else None})
        reached = [r for r in per_run if r["iteration"] is not None]
        table["groups"][g] = {"reached": len(reached), "runs": len(per_run), "per_run": per_run,
                              "iterations": _stats([r["iteration"] for r in reached]),
                              "seconds": _stats([r["seconds"] for r in reached])}
    ref = table["groups"].get(reference)

    def reached(row: dict[str, Any] | None, key: str) -> list[float]:
        return [r[key] for r in row["per_run"] if r[key] is not None] if row else []

    for row in table["groups"].values():
        for key, per_run_key in (("iterations", "iteration"), ("seconds", "seconds")):
            row[f"speedup_{key}"] = _ratio(ref and ref[key], row[key])
            row[f"speedup_{key}_ci"] = ratio_ci(reached(ref, per_run_key), reached(row, per_run_key))
    return table


def equal_iterations(points: dict[str, list[list[EvalPoint]]], metric: str) -> dict[str, Any]:
    """Each group's accuracy at every eval iteration that all groups have."""
    curves = {g: {p["iteration"]: p for p in curve(ps, metric)} for g, ps in points.items()}
    common = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
    return {"iterations": common, "groups": {g: [c[it] for it in common] for g, c in curves.items()}}


def equal_wallclock(points: dict[str, list[list[EvalPoint]]], metric: str,
                    budget: float | None = None) -> dict[str, Any]:
    """Each group's accuracy at a training-seconds budget (default: the smallest training seconds at a
    run's last eval, which every run reached); each run contributes its last eval at or before the budget."""
    finals = [ps[-1].seconds for run_points in points.values() for ps in run_points if ps]
    if budget is None:
        budget = min(finals) if finals else 0.0
    out: dict[str, Any] = {"budget_s": budget, "groups": {}}
    for g, run_points in points.items():
        chosen = [[p for p in ps if p.seconds <= budget + 1e-6 and metric in p.value][-1:] for ps in run_points]
        chosen = [c[0] for c in chosen if c]
        if chosen:
            out["groups"][g] = {**spread([p.value[metric] for p in chosen]),
                                "iteration": float(np.mean([p.iteration for p in chosen])),
                                "half": float(np.mean([(p.ci[metric][1] - p.ci[metric][0]) / 2 for p in chosen]))}
    return out


def noise(groups: dict[str, list[Run]], points: dict[str, list[list[EvalPoint]]], metric: str) -> dict[str, Any]:
    """Typical interval half-width over questions (median over runs and evals, per method) and the typical
    spread over seeds (median over groups and trained iterations with 2+ seeds of the std over seeds)."""
    halves: dict[str, list[float]] = {}
    for p in (p for run_points in points.values() for ps in run_points for p in ps):
        if metric in p.value:
            halves.setdefault(p.method[metric], []).append((p.ci[metric][1] - p.ci[metric][0]) / 2)
    # Iteration 0 is the same starting policy in every seed: no training noise to measure there.
    seed_std = [p["std"] for ps in points.values() for p in curve(ps, metric) if p["n"] > 1 and p["iteration"] > 0]
    questions = sorted({r.questions for rs in groups.values() for r in rs if r.questions})
    return {"half_width": {m: float(np.median(h)) for m, h in halves.items()},
            "evals": {m: len(h) for m, h in halves.items()}, "questions": questions,
            "seed_std": float(np.median(seed_std)) if seed_std else None}


def moving_average(y: np.ndarray, window: int = 5) -> np.ndarray:
    """Centred moving average; the windows at the ends shrink to the points that exist."""
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return y
    k = np.ones(min(window, len(y)))
    return np.convolve(y, k, "same") / np.convolve(np.ones_like(y), k, "same")


def mean_by_iteration(series: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, mean over the runs that have each iteration)."""
    its = sorted(set().union(*series)) if series else []
    return np.array(its, dtype=int), np.array([np.mean([s[i] for s in series if i in s]) for i in its])


def solve_rates(runs: list[Run], source: str = "solve") -> dict[str, Any]:
    """Share of training questions (`source` "solve": phase train) or of a curriculum's candidate pool
    ("pool_solve": phase selection) solved by all / by none of their attempts, per iteration as the mean
    over seeds, and the mean over iterations."""
    out: dict[str, Any] = {}
    for kind in ("all_solved", "none_solved"):
        its, mean = mean_by_iteration([{s.iteration: getattr(s, kind) for s in getattr(r, source)}
                                       for r in runs if getattr(r, source)])
        out[kind] = {"iterations": its.tolist(), "mean": mean.tolist(),
                     "overall": float(mean.mean()) if len(mean) else None}
    return out


def row_series(runs: list[Run], key: str) -> tuple[np.ndarray, np.ndarray]:
    """A metrics.jsonl key per iteration, mean over seeds (iterations where no seed logged it left out)."""
    return mean_by_iteration([{r["iteration"]: r[key] for r in run.rows if r.get(key) is not None} for run in runs])


def level_accuracy(runs: list[Run]) -> dict[str, Any]:
    """Held-out accuracy by question level at each eval, mean over seeds: from the greedy responses, or
    the sampled ones where every run lacks greedy ones. Empty (with a note) without levels."""
    phase = "eval_greedy" if all(r.per_question.get("eval_greedy") for r in runs) else "eval"
    series: dict[int, list[dict[int, float]]] = {}
    notes = set()
    for run in runs:
        levels, note = question_levels(run)
        if levels is None:
            notes.add(note)
            continue
        by_level: dict[int, dict[int, float]] = {}
        for it, per_q in run.per_question.get(phase, {}).items():
            acc: dict[int, list[float]] = {}
            for q, r in per_q.items():
                if q in levels:
                    acc.setdefault(levels[q], []).append(r)
            for lv, rs in acc.items():
                by_level.setdefault(lv, {})[it] = float(np.mean(rs))
        for lv, s in by_level.items():
            series.setdefault(lv, []).append(s)
    levels_out = {lv: dict(zip(*(a.tolist() for a in mean_by_iteration(s)), strict=True))
                  for lv, s in sorted(series.items())}
    return {"phase": phase, "levels": levels_out, "note": "; ".join(sorted(notes))}


def paired_difference(a: list[Run], b: list[Run], metric: str) -> dict[str, Any] | None:
    """Group a minus group b at the last eval iteration every run of both reached, paired by question: per
    question the mean over each group's seeds, the difference averaged over the questions both have, and a
    95% bootstrap interval over those questions (question noise only; the seeds' own spread is reported
    beside it). None when a run lacks per-question rewards for the metric."""
    phase = PHASE[metric]
    common = set.intersection(*(set(r.per_question.get(phase, {})) for r in a + b)) if a and b else set()
    if not common:
        return None
    it = max(common)
    # Seed x question matrices on the questions every run of both groups has; rows in seed order, so that
    # row k is seed k in both when the groups ran the same seeds.
    a, b = (sorted(rs, key=lambda r: r.seed) for rs in (a, b))
    shared = sorted(set.intersection(*(set(r.per_question[phase][it]) for r in a + b)))
    ma, mb = (np.array([[r.per_question[phase][it][q] for q in shared] for r in rs]) for rs in (a, b))
    diff = ma.mean(axis=0) - mb.mean(axis=0)
    lo, hi = bootstrap_ci(diff)
    paired = [r.seed for r in a] == [r.seed for r in b] and len({r.seed for r in a}) == len(a)
    return {"iteration": it, "questions": len(shared), "difference": float(diff.mean()), "ci": (lo, hi),
            "ci_seeds": seeds_and_questions_ci(ma, mb, paired) if len(a) > 1 and len(b) > 1 else None,
            "paired_by_seed": paired,
            "seed_std": [float(np.std(m.mean(axis=1), ddof=1)) if len(m) > 1 else None for m in (ma, mb)]}


def seeds_and_questions_ci(ma: np.ndarray, mb: np.ndarray, paired: bool,
                           resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(ma) - mean(mb) (rows: seeds, columns: the same questions), resampling both
    levels: the seeds of each group (the same draw for both when `paired`: row k is seed k in each) and the
    questions (the same draw for both). Question noise alone is bootstrap_ci's; this one adds the seeds' own
    spread, which with few seeds it slightly understates (a bootstrap over n seeds has (n-1)/n of their
    variance)."""
    rng = np.random.default_rng(seed)
    q = rng.integers(0, ma.shape[1], size=(resamples, ma.shape[1]))
    sa = rng.integers(0, ma.shape[0], size=(resamples, ma.shape[0]))
    sb = sa if paired else rng.integers(0, mb.shape[0], size=(resamples, mb.shape[0]))
    # The mean over (seeds, questions) of a resample = the mean over its seeds of each seed's mean on the
    # resampled questions; draw by draw to keep memory at seeds x questions.
    diffs = np.array([ma[sa[i]][:, q[i]].mean() - mb[sb[i]][:, q[i]].mean() for i in range(resamples)])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)
