"""Test accuracy against training accuracy, per group: the VinePPO paper's second claim ("higher test
accuracy for a given training accuracy", its Figure 8 style) on rlreason's sweeps (issue 26).

    python experiments/train_test.py multirun/sweep-countdown -o experiments/figures/countdown
    python experiments/train_test.py multirun/sweep-arith --reference ppo/uniform -o experiments/figures/arith-tt

Training accuracy at an eval iteration t is the mean of `train/success` (the share of the iteration's
training rollouts that succeeded: the policy sampled at T = 1 on the questions it trains on) over the
`--window` iterations up to t; test accuracy is the eval's greedy accuracy (and mean@n) at t. Each run
gives one (train, test) point per eval after the start. Per group, test is fitted on train by least
squares over all its points; the report gives the fit's test accuracy at one common training accuracy
(the median of every point of every group, inside every group's range) with a 95% interval from
resampling the group's seeds, and each group's difference from the reference at that level.

Under a curriculum that picks questions by their solve rate (learnability, sfl), the training rollouts
are the picked questions' (p near 1/2 by design): its training accuracy measures the curriculum, not the
policy, and the report flags those groups instead of ranking them.

Writes train_test.png and train_test.json into OUT and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep.runs import Run, SweepError, group_runs, load_runs  # noqa: E402
from sweep.stats import BOOTSTRAP_RESAMPLES, metric_key  # noqa: E402

SELECTIVE = {"learnability", "learnability_history", "sfl"}  # curricula whose training accuracy is chosen


def points(run: Run, metric: str, window: int) -> list[tuple[int, float, float]]:
    """(iteration, training accuracy over the window up to it, test accuracy) per eval after the start."""
    train = {r["iteration"]: r["train/success"] for r in run.rows if r.get("train/success") is not None}
    out = []
    for row in run.eval_rows:
        it, test = row["iteration"], row.get(metric_key(metric, run.samples))
        recent = [train[i] for i in range(it - window + 1, it + 1) if i in train]
        if it > 0 and test is not None and recent:
            out.append((it, float(np.mean(recent)), float(test)))
    return out


def fit_at(pts: list[list[tuple[int, float, float]]], level: float) -> float:
    """Least-squares line of test on train over the runs' points, read at `level`."""
    x = np.array([p[1] for run in pts for p in run])
    y = np.array([p[2] for run in pts for p in run])
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope * level + intercept)


def at_level(groups: dict[str, list[list]], level: float, reference: str, seed: int = 0) -> dict[str, dict]:
    """Each group's fitted test accuracy at `level`, and its difference from the reference's, with 95%
    intervals from resampling each group's runs (seeds) with replacement."""
    rng = np.random.default_rng(seed)
    draws: dict[str, np.ndarray] = {}
    for g, runs in groups.items():
        picks = rng.integers(0, len(runs), size=(BOOTSTRAP_RESAMPLES, len(runs)))
        vals = []
        for p in picks:
            chosen = [runs[i] for i in p]
            xs = {q[1] for run in chosen for q in run}
            vals.append(fit_at(chosen, level) if len(xs) > 1 else np.nan)
        draws[g] = np.array(vals)
    out = {}
    for g, runs in groups.items():
        d = draws[g]
        row = {"runs": len(runs), "test_at_level": fit_at(runs, level),
               "ci": [float(v) for v in np.nanpercentile(d, [2.5, 97.5])]}
        if g != reference and reference in draws:
            diff = d - draws[reference]
            row["minus_reference"] = row["test_at_level"] - fit_at(groups[reference], level)
            row["minus_reference_ci"] = [float(v) for v in np.nanpercentile(diff, [2.5, 97.5])]
        out[g] = row
    return out


def plot(groups: dict[str, list[list]], level: float, metric: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for i, (g, runs) in enumerate(groups.items()):
        color = f"C{i}"
        xs = [p[1] for run in runs for p in run]
        ys = [p[2] for run in runs for p in run]
        ax.scatter(xs, ys, s=10, alpha=0.35, color=color)
        its = sorted({p[0] for run in runs for p in run})
        mx = [np.mean([p[1] for run in runs for p in run if p[0] == it]) for it in its]
        my = [np.mean([p[2] for run in runs for p in run if p[0] == it]) for it in its]
        ax.plot(mx, my, "-o", ms=3, color=color, label=f"{g} ({len(runs)} seeds)")
    ax.axvline(level, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("training accuracy (train/success, mean over the window)")
    ax.set_ylabel(f"test accuracy ({metric})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "train_test.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--reference", default="ppo/uniform")
    ap.add_argument("--metric", choices=["greedy", "mean"], default="greedy")
    ap.add_argument("--window", type=int, default=10, help="iterations of train/success averaged per eval")
    ap.add_argument("--by", action="append", default=[], metavar="KEY")
    args = ap.parse_args(argv)
    try:
        by_group = group_runs(load_runs(args.dirs, tuple(args.by)))
    except SweepError as e:
        print(f"train_test: {e}", file=sys.stderr)
        return 2
    groups = {g: [p for p in (points(r, args.metric, args.window) for r in rs) if p] for g, rs in by_group.items()}
    groups = {g: runs for g, runs in groups.items() if runs}
    ranked = {g: runs for g, runs in groups.items() if g.split("/")[1] not in SELECTIVE}
    if not ranked:
        print("train_test: no group with a training accuracy to compare", file=sys.stderr)
        return 2
    # One level inside every ranked group's range: the pooled median, clipped to the overlap.
    lo = max(min(p[1] for run in runs for p in run) for runs in ranked.values())
    hi = min(max(p[1] for run in runs for p in run) for runs in ranked.values())
    level = float(np.clip(np.median([p[1] for runs in ranked.values() for run in runs for p in run]), lo, hi))
    table = at_level(ranked, level, args.reference)
    args.out.mkdir(parents=True, exist_ok=True)
    fig = plot(groups, level, args.metric, args.out)
    report = {"metric": args.metric, "window": args.window, "level": level, "overlap": [lo, hi],
              "reference": args.reference, "groups": table,
              "flagged": sorted(set(groups) - set(ranked)),
              "points": {g: runs for g, runs in groups.items()}}
    (args.out / "train_test.json").write_text(json.dumps(report, indent=1))
    print(f"Test ({args.metric}) at training accuracy {level:.1%} (overlap of the groups' ranges "
          f"{lo:.1%}-{hi:.1%}), least-squares fit per group, 95% intervals over seeds; {fig}\n")
    print(f"| group | seeds | test at {level:.1%} train | − {args.reference} |\n|---|---|---|---|")
    for g, row in table.items():
        diff = (f"{100 * row['minus_reference']:+.1f} [{100 * row['minus_reference_ci'][0]:+.1f}, "
                f"{100 * row['minus_reference_ci'][1]:+.1f}]" if "minus_reference" in row else "")
        print(f"| {g} | {row['runs']} | {100 * row['test_at_level']:.1f} [{100 * row['ci'][0]:.1f}, "
              f"{100 * row['ci'][1]:.1f}] | {diff} |")
    for g in report["flagged"]:
        print(f"| {g} | {len(groups[g])} | not ranked: its curriculum picks the questions it trains on | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
