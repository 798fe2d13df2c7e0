"""Share of questions solved by all / by none of their attempts over training (Foster & Foerster 2025).

    python experiments/plot_solve_rates.py RUN_DIR/stats.sqlite -o solve_rates.png

One line per phase (train, selection) and kind (all solved: solid, none solved: dashed). Reads the
store read-only, so it can run while training writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlreason.curriculum.store import StatsStore  # noqa: E402

PHASES = {"train": "tab:blue", "selection": "tab:orange"}


def plot(store_path: Path, out: Path) -> int:
    """Write the figure; returns how many phases had data."""
    with StatsStore(store_path, None, readonly=True) as store:
        rows = {phase: store.solve_fractions(phase) for phase in PHASES}
    fig, ax = plt.subplots(figsize=(7, 4))
    for phase, color in PHASES.items():
        if not rows[phase]:
            continue
        its = [r.iteration for r in rows[phase]]
        ax.plot(its, [r.all_solved for r in rows[phase]], color=color, label=f"{phase}: solved by all")
        ax.plot(its, [r.none_solved for r in rows[phase]], color=color, ls="--", label=f"{phase}: solved by none")
    ax.set(xlabel="iteration", ylabel="fraction of questions", ylim=(0, 1), title=store_path.resolve().parent.name)
    ax.grid(alpha=0.3)
    if any(rows.values()):
        ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return sum(bool(r) for r in rows.values())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path, help="RUN_DIR/stats.sqlite")
    ap.add_argument("-o", "--out", type=Path, default=Path("solve_rates.png"))
    args = ap.parse_args(argv)
    n = plot(args.store, args.out)
    print(f"wrote {args.out} ({n} phase(s) with data)")


if __name__ == "__main__":
    main()
