"""report.json (every number) and report.md (the tables of the results page) from a loaded sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .runs import NOT_TRAINING, Run, train_seconds
from .stats import (
    METRICS,
    SMOOTH,
    curve,
    equal_iterations,
    equal_wallclock,
    metric_name,
    noise,
    paired_difference,
    solve_rates,
    speedup,
)


def build(groups: dict[str, list[Run]], points: dict[str, list], metrics: list[str], reference: str,
          dirs: list[str], label: str, notes: list[str], figures: list[str],
          budgets: list[float] | None = None) -> dict[str, Any]:
    samples = next(iter(groups.values()))[0].samples
    report: dict[str, Any] = {
        "label": label, "dirs": dirs, "reference": reference, "samples": samples, "notes": notes,
        "figures": figures, "smoothing_iterations": SMOOTH,
        "questions": sorted({r.questions for rs in groups.values() for r in rs if r.questions}),
        "runs": [{"path": str(r.path), "group": g, "seed": r.seed, "lr": r.cfg.learner.lr,
                  "last_iteration": r.last_iteration, "planned_iterations": r.planned_iterations,
                  "finished": r.finished, "questions": r.questions,
                  "interval": {m: sorted({p.method[m] for p in ps if m in p.method}) for m in METRICS}}
                 for g, rs in groups.items() for r, ps in zip(rs, points[g], strict=True)],
        "curves": {g: {m: curve(ps, m) for m in METRICS} for g, ps in points.items()},
        "speedup": [], "curriculum_speedup": [],
        "equal_iterations": {m: equal_iterations(points, m) for m in METRICS},
        # One table per budget: the default (None) is the one every run reached.
        "equal_wallclock": [{m: equal_wallclock(points, m, b) for m in METRICS} for b in budgets or [None]],
        "noise": {m: noise(groups, points, m) for m in METRICS},
        "solve_rates": {g: solve_rates(rs) for g, rs in groups.items()},
        "pool_solve_rates": {g: solve_rates(rs, "pool_solve") for g, rs in groups.items()},
        "paired": [],
        "phase_seconds": {g: phase_seconds(rs) for g, rs in groups.items()},
    }
    # Differences that share the test questions are measured paired (question noise cancels in part).
    pairs = [(g, reference) for g in groups if g != reference]
    pairs += [(g, f"{rs[0].algo}/uniform") for g, rs in groups.items()
              if rs[0].curriculum != "uniform" and f"{rs[0].algo}/uniform" in groups
              and f"{rs[0].algo}/uniform" != reference]
    for g, base in pairs:
        for m in METRICS:
            if (d := paired_difference(groups[g], groups[base], m)) is not None:
                report["paired"].append({"group": g, "against": base, "metric": m, **d})
    for m in metrics:
        if (t := speedup(groups, points, m, reference)) is not None:
            report["speedup"].append(t)
        # LILO's claim: a curriculum against uniform sampling for the same algorithm.
        for g, runs in groups.items():
            base = f"{runs[0].algo}/uniform"
            if runs[0].curriculum != "uniform" and base in groups:
                t = speedup(groups, points, m, base, rows=[base, g])
                if t is not None:
                    report["curriculum_speedup"].append(t)
    return report


def phase_seconds(runs: list[Run]) -> dict[str, Any]:
    """Where a group's training seconds go: each run's cumulative time/<phase> at its last row (eval and
    checkpoint excluded, as in the speed-ups), mean over the seeds, and per iteration."""
    last = [r.rows[-1] for r in runs if r.rows and r.last_iteration > 0]
    if not last:
        return {}
    keys = sorted({k for row in last for k in row if k.startswith("time/") and k not in NOT_TRAINING})
    phases = {k.removeprefix("time/"): sum(row.get(k, 0.0) for row in last) / len(last) for k in keys}
    iterations = sum(row["iteration"] for row in last) / len(last)
    # The wall-clock where runs logged it: one step off the phases overlap and their sum overstates it.
    total = sum(train_seconds(row) for row in last) / len(last)
    return {"runs": len(last), "iterations": iterations, "phases": phases, "total": total,
            "per_iteration": total / iterations, "wall": all("time/train_wall" in row for row in last)}


def _pts(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _range(s: dict | None, fmt: str) -> str:
    return "—" if s is None else f"{s['mean']:{fmt}} ({s['min']:.0f}–{s['max']:.0f})"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def _ratio_ci(x: float | None, ci: tuple[float, float] | None) -> str:
    return _ratio(x) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if x is not None and ci is not None else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _speedup_md(t: dict[str, Any], samples: int) -> list[str]:
    name = metric_name(t["metric"], samples)
    lines = [f"Target: the best seed-mean {name} accuracy of {t['target_group']}, {_pts(t['target'])}% "
             f"(iteration {t['target_iteration']}). Means and ranges over the seeds that reached it; speed-up = "
             f"{t['reference']} / group (> 1: faster), with a 95% bootstrap interval over those seeds." + (" The target is the starting accuracy: no speed-up to "
             "measure yet." if t["target_iteration"] == 0 else ""), ""]
    rows = []
    ordered = sorted(t["groups"].items(), key=lambda kv: kv[0] != t["reference"])  # the reference first
    for g, row in ordered:
        missed = [f"s{r['seed']} (ran to {r['last_iteration']})" for r in row["per_run"] if r["iteration"] is None]
        rows.append([g, f"{row['reached']}/{row['runs']}" + (f"; not reached: {', '.join(missed)}" if missed else ""),
                     _range(row["iterations"], ".1f"), _range(row["seconds"], ".0f"),
                     _ratio_ci(row["speedup_iterations"], row.get("speedup_iterations_ci")),
                     _ratio_ci(row["speedup_seconds"], row.get("speedup_seconds_ci"))])
    return lines + _table(["group", "reached", "iterations", "training s", "speed-up (iterations)",
                           "speed-up (seconds)"], rows)


def _cell(p: dict[str, Any], seeds: int) -> str:
    partial = f" [{p['n']}/{seeds} seeds]" if p["n"] < seeds else ""
    std = f" ± {_pts(p['std'])}" if p["n"] > 1 else ""  # one seed: no spread to show
    return f"{_pts(p['mean'])}{std} (±{_pts(p['half'])}){partial}"


def markdown(report: dict[str, Any], groups: dict[str, list[Run]]) -> str:
    n = report["samples"]
    seeds = {g: len(rs) for g, rs in groups.items()}
    q = ", ".join(map(str, report["questions"])) or "unknown"
    out = [f"# Sweep report: {report['label']}", "",
           f"Dirs: {', '.join(report['dirs'])}. {len(report['runs'])} runs in {len(groups)} groups "
           f"(algo/curriculum); {q} held-out test questions per eval. Accuracies in points (%); "
           f"\"a ± b (±c)\": seed mean ± std over seeds (the mean 95% interval half-width over questions).", ""]
    rows = []
    for g, rs in groups.items():
        runs = [r for r in report["runs"] if r["group"] == g]
        methods = sorted({m for r in runs for m in r["interval"]["greedy"]})
        rows.append([g, str(len(rs)), ", ".join(str(r["seed"]) for r in runs),
                     ", ".join(f"{r['last_iteration']}/{r['planned_iterations']}" for r in runs),
                     ", ".join(sorted({str(r["lr"]) for r in runs})), ", ".join(methods) or "—"])
    out += _table(["group", "runs", "seeds", "iterations done/planned", "learner.lr", "greedy interval"], rows)
    out += [f"Figures: {', '.join(report['figures'])}.", ""]
    if report["notes"]:
        out += ["Notes:", "", *(f"- {x}" for x in report["notes"]), ""]

    out += ["## Steps and training seconds to the reference's best", "",
            "Training seconds: the training wall-clock (time/train_wall) where a run logged it, else the "
            "cumulative time of every phase; eval and checkpoint excluded either way (the eval's own grading is "
            "in eval since commit d22691c; before, in grading, < 0.1% of the time on arith).", ""]
    for t in report["speedup"]:
        out += [f"### {metric_name(t['metric'], n)}, reference {t['reference']}", "", *_speedup_md(t, n)]
    if report["curriculum_speedup"]:
        out += ["## Curriculum against uniform sampling, same algorithm", ""]
        for t in report["curriculum_speedup"]:
            out += [f"### {metric_name(t['metric'], n)}, {list(t['groups'])[1]} against {t['reference']}", "",
                    *_speedup_md(t, n)]

    out += ["## Accuracy at equal iterations", ""]
    for m in METRICS:
        e = report["equal_iterations"][m]
        rows = [[str(it), *(_cell(e["groups"][g][i], seeds[g]) for g in groups)] for i, it in enumerate(e["iterations"])]
        out += [f"{metric_name(m, n)}:", "", *_table(["iteration", *groups], rows)]
    out += ["## Accuracy at equal training wall-clock", ""]
    for w in report["equal_wallclock"]:
        why = ("the smallest training seconds at any run's last eval" if len(report["equal_wallclock"]) == 1
               else "--budget")
        out += [f"Budget: {w['greedy']['budget_s']:.0f} training seconds ({why}); each run at its last eval "
                "within the budget.", ""]
        rows = [[g, *(_cell(w[m]["groups"][g], seeds[g]) if g in w[m]["groups"] else "—" for m in METRICS),
                 f"{w['greedy']['groups'][g]['iteration']:.1f}" if g in w["greedy"]["groups"] else "—"]
                for g in groups]
        out += _table(["group", *(metric_name(m, n) for m in METRICS), "mean iteration"], rows)

    if report["paired"]:
        out += ["## Paired differences at the last common eval", "",
                "Group minus the group it is compared with, on the same test questions: per question the mean "
                "over each group's seeds. Two 95% bootstrap intervals: over questions (question noise only), "
                "and over seeds and questions (both levels resampled; seeds drawn as pairs where both groups "
                "ran the same seeds, marked 'paired'). The last column is the std over seeds of each group's "
                "accuracy on those questions.", ""]

        def ci(c: tuple[float, float] | None) -> str:
            return "—" if c is None else f"[{100 * c[0]:+.1f}, {100 * c[1]:+.1f}]"

        rows = [[f"{d['group']} − {d['against']}", metric_name(d["metric"], n), str(d["iteration"]),
                 str(d["questions"]), f"{100 * d['difference']:+.1f}", ci(d["ci"]),
                 ci(d.get("ci_seeds")) + (" paired" if d.get("ci_seeds") and d.get("paired_by_seed") else ""),
                 " / ".join("—" if x is None else _pts(x) for x in d["seed_std"])] for d in report["paired"]]
        out += _table(["difference", "metric", "iteration", "questions", "points", "95% interval, questions",
                       "95% interval, seeds and questions", "seed std (a / b)"], rows)
    if any(report["phase_seconds"].values()):
        out += ["## Where the training seconds go", "",
                "Cumulative seconds per phase at each run's last iteration, mean over seeds (eval and checkpoint "
                "excluded). The total is the training wall-clock where the runs logged it (time/train_wall, "
                "marked 'wall'; one step off the phases overlap, so it is less than their sum), else the sum.", ""]
        names = sorted({k for s in report["phase_seconds"].values() for k in s.get("phases", {})})
        ref = report["phase_seconds"].get(report["reference"], {}).get("per_iteration")
        rows = [[g, *(f"{s['phases'].get(k, 0.0):.0f}" for k in names), f"{s['total']:.0f}" + (" wall" if s.get("wall") else ""),
                 f"{s['per_iteration']:.2f}", _ratio(s["per_iteration"] / ref) if ref else "—"]
                for g, s in report["phase_seconds"].items() if s]
        out += _table(["group", *names, "training total", "per iteration", f"× {report['reference']}"], rows)
    out += ["## Noise", ""]
    for m in METRICS:
        z = report["noise"][m]
        parts = [f"±{_pts(h)} points ({method}, median of {z['evals'][method]} run evals)"
                 for method, h in z["half_width"].items()]
        spread = "" if z["seed_std"] is None else f"; std over seeds: {_pts(z['seed_std'])} points (median over " \
                                                 "groups and evals after iteration 0)"
        out.append(f"- {metric_name(m, n)}: 95% interval half-width over {q} questions "
                   f"{', '.join(parts) or '—'}{spread}.")
    out += ["", "Bootstrap: 2000 resamples of the questions (numpy default_rng(0)); binomial: normal "
            "approximation from the accuracy and the question count, for runs whose store lacks the per-question "
            "rewards (greedy responses are stored since commit 097a20c).", ""]

    out += ["## Training questions solved by all / none of their attempts", "",
            "Share of the iteration's training questions (phase train) and, for a curriculum that scores a "
            "candidate pool, of that pool (phase selection: what uniform sampling would have drawn), mean over "
            "seeds and over iterations.", ""]
    pool = report["pool_solve_rates"]

    def pair(s: dict[str, Any]) -> list[str]:
        return [_pts(s["all_solved"]["overall"]), _pts(s["none_solved"]["overall"])]

    rows = [[g, *pair(s), *(pair(pool[g]) if pool[g]["all_solved"]["iterations"] else ["—", "—"])]
            for g, s in report["solve_rates"].items()]
    out += _table(["group", "trained on: solved by all", "by none", "pool: solved by all", "by none"], rows)
    return "\n".join(out)


def write(report: dict[str, Any], md: str, out_dir: Path) -> None:
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out_dir / "report.md").write_text(md + "\n")
