"""Figures and tables of the results page from a sweep of rlreason runs (issue 13).

    python -m rlreason.run -m experiment=sweep algo=ppo,vineppo curriculum=uniform,learnability seed=0,1,2 \
        hydra.sweep.dir=multirun/sweep-default
    python experiments/sweep_report.py multirun/sweep-default -o experiments/figures/default

Runs are the dirs (any depth, symlinks followed) holding .hydra/config.yaml and metrics.jsonl; a group is
(algo, curriculum) and its runs are seeds. Writes curves.png, solve_rates.png, diagnostics.png, report.md
and report.json into OUTDIR, and prints report.md. Reads every file read-only: it can run on a sweep that
is still training (unfinished runs count up to where they got, and the report says so).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep import plots, report  # noqa: E402
from sweep.runs import SweepError, config_warnings, group_runs, load_runs  # noqa: E402
from sweep.stats import METRICS, eval_points  # noqa: E402


def pick(groups: dict, wanted: str | None, default: str, what: str, notes: list[str]) -> str:
    """The group named `wanted` (an error if absent), else `default` if present, else the first group."""
    if wanted is not None:
        if wanted not in groups:
            raise SweepError(f"--{what} {wanted}: no such group; the sweep has {', '.join(groups)}")
        return wanted
    if default in groups:
        return default
    notes.append(f"{what}: {default} is not in the sweep; using {next(iter(groups))}")
    return next(iter(groups))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="sweep dirs (or run dirs) to read")
    ap.add_argument("-o", "--out", type=Path, required=True, help="where the figures and reports go")
    ap.add_argument("--label", help="the report's title (default: the dirs' names)")
    ap.add_argument("--reference", help="algo/curriculum whose best accuracy is the target (default ppo/uniform)")
    ap.add_argument("--diagnose", help="algo/curriculum of diagnostics.png (default: the reference)")
    ap.add_argument("--metric", choices=[*METRICS, "both"], default="both",
                    help="accuracy of the speed-up tables: greedy, mean (mean@n) or both (default)")
    ap.add_argument("--by", action="append", default=[], metavar="KEY",
                    help="a config key that also tells groups apart, e.g. --by learner.lr for a tuning sweep "
                         "(group names become 'ppo/uniform learner.lr=3e-05')")
    ap.add_argument("--budget", action="append", type=float, metavar="SECONDS",
                    help="a training-seconds budget for the equal wall-clock table (repeatable; default: the "
                         "smallest training seconds at any run's last eval)")
    args = ap.parse_args(argv)
    try:
        runs = load_runs(args.dirs, tuple(args.by))
        groups = group_runs(runs)
        notes: list[str] = []
        reference = pick(groups, args.reference, "ppo/uniform", "reference", notes)
        diagnose = pick(groups, args.diagnose, reference, "diagnose", notes)
    except SweepError as e:
        print(f"sweep_report: {e}", file=sys.stderr)
        return 2
    for g, rs in groups.items():
        notes += config_warnings(g, rs)
        notes += [f"{g} seed {r.seed} is unfinished, at iteration {r.last_iteration} of {r.planned_iterations} "
                  f"({r.path}): included up to there; its group's later points average fewer seeds"
                  for r in rs if not r.finished]
        notes += [f"{g} seed {r.seed}: stats.sqlite not read ({r.store_note}); binomial intervals, no solve rates"
                  for r in rs if r.store_note]
    for n in notes:
        print(f"sweep_report: warning: {n}", file=sys.stderr)

    points = {g: [eval_points(r) for r in rs] for g, rs in groups.items()}
    samples = runs[0].samples
    figures = [plots.plot_curves(groups, points, samples, args.out / "curves.png"),
               plots.plot_solve_rates(groups, args.out / "solve_rates.png")]
    diag, level_note = plots.plot_diagnostics(diagnose, groups[diagnose], args.out / "diagnostics.png")
    figures.append(diag)
    if level_note:
        notes.append(f"diagnostics.png: no accuracy by level ({level_note})")
    names = ["curves.png (accuracy vs iteration and training seconds)", "solve_rates.png (training questions "
             "solved by all/none)", f"diagnostics.png ({diagnose})"]
    metrics = list(METRICS) if args.metric == "both" else [args.metric]
    label = args.label or ", ".join(d.resolve().name for d in args.dirs)
    rep = report.build(groups, points, metrics, reference, [str(d) for d in args.dirs], label, notes, names,
                       args.budget)
    md = report.markdown(rep, groups)
    report.write(rep, md, args.out)
    print(md)
    print(f"wrote {', '.join(str(f) for f in figures)}, {args.out / 'report.md'}, {args.out / 'report.json'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
