"""Learning curves of the comparison with their intervals, one figure per rlreason run against its TRL
baseline: greedy accuracy per eval step (mean over seeds, 95% t-interval shaded, each seed a thin line)
and below it rlreason minus TRL with Welch's 95% interval.

    python experiments/peer/plot.py OUT            # OUT/figures/<rlreason run>.png, from OUT/runs/*.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peer import stats  # noqa: E402

COLOURS = {"trl": "tab:orange", "rlreason": "tab:blue"}


def band(ax, steps: list[int], cells: list[dict], colour: str, label: str) -> None:
    mean = [100 * c["mean"] for c in cells]
    ax.plot(steps, mean, color=colour, lw=2, label=f"{label} (n={cells[0]['n']})")
    if all(c["ci"] for c in cells):
        ax.fill_between(steps, [100 * c["ci"][0] for c in cells], [100 * c["ci"][1] for c in cells],
                        color=colour, alpha=0.2, lw=0)
    for seed in range(cells[0]["n"]):
        ax.plot(steps, [100 * c["values"][seed] for c in cells], color=colour, lw=0.5, alpha=0.5)


def figure(summary: dict, fw: str, path: Path) -> None:
    test = summary["vs_trl"][fw]
    base = test["baseline"]
    curves = summary["curves"]
    steps = sorted(test["acc"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 6), sharex=True, height_ratios=[2, 1])
    for name in (base, fw):
        band(top, steps, [curves[name]["acc"][s] for s in steps], COLOURS[name.split("-")[0]], name)
    top.set_ylabel("greedy held-out accuracy (%)")
    top.legend()
    diffs = [test["acc"][s] for s in steps]
    bottom.plot(steps, [100 * d["diff"] for d in diffs], color="black", lw=2)
    # a step where every seed of both sides scored the same (step 0: one start model) has no spread: zero width
    cis = [d["ci"] or ([d["diff"]] * 2 if d["se"] == 0 else None) for d in diffs]
    if all(cis):
        bottom.fill_between(steps, [100 * c[0] for c in cis], [100 * c[1] for c in cis], color="grey", alpha=0.3, lw=0)
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set_ylabel(f"{fw} - {base}\n(points, 95% CI)")
    bottom.set_xlabel("step")
    sp = test.get("s_per_step")
    if sp:
        top.set_title(f"s/step (mean over seeds): {fw} {curves[fw]['s_per_step']['mean']:.2f}, {base} "
                      f"{curves[base]['s_per_step']['mean']:.2f}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the comparison's --out dir")
    a = p.parse_args(argv)
    summary = stats.summarise(stats.load_runs(Path(a.out) / "runs"))
    paths = []
    for fw in summary["vs_trl"]:
        paths.append(Path(a.out) / "figures" / f"{fw}.png")
        figure(summary, fw, paths[-1])
        print(paths[-1])
    return paths


if __name__ == "__main__":
    main()
