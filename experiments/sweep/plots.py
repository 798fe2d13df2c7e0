"""The results page's figures, small PNGs (they are committed): learning curves, training solve rates,
and the plateau diagnostics of one group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runs import Run  # noqa: E402
from .stats import (  # noqa: E402
    METRICS,
    SMOOTH,
    curve,
    level_accuracy,
    metric_name,
    moving_average,
    row_series,
    solve_rates,
)

DPI = 90
SECONDS_LABEL = "training seconds (no eval or checkpoint)"


def _colors(names: list[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def _save(fig, out: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    """`rect`: the part of the figure the axes may fill (room kept for a figure legend)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def plot_curves(groups: dict[str, list[Run]], points: dict[str, list], samples: int, out: Path) -> Path:
    """Rows: greedy, mean@n; columns: vs iteration, vs training seconds. Per group: the seed mean (line),
    min-max over seeds (band, 2+ seeds), and the mean of the runs' 95% intervals over questions (bars)."""
    colors = _colors(list(groups))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharey="row")
    for row, metric in enumerate(METRICS):
        for col, x_key in enumerate(("iteration", "seconds")):
            ax = axes[row, col]
            span = max((p[x_key] for ps in points.values() for p in curve(ps, metric)), default=1.0) or 1.0
            for i, (g, runs) in enumerate(groups.items()):
                c = curve(points[g], metric)
                if not c:
                    continue
                x = np.array([p[x_key] for p in c])
                mean = np.array([p["mean"] for p in c])
                ax.plot(x, mean, color=colors[g], marker="o", ms=3, label=f"{g} ({len(runs)} seeds)")
                if len(runs) > 1:
                    ax.fill_between(x, [p["min"] for p in c], [p["max"] for p in c], color=colors[g], alpha=0.15,
                                    lw=0)
                # The bars of the groups sit side by side (1% of the axis apart) rather than on top of each other.
                dodge = (i - (len(groups) - 1) / 2) * 0.01 * span
                ax.errorbar(x + dodge, mean, yerr=[[p["err_lo"] for p in c], [p["err_hi"] for p in c]], fmt="none",
                            ecolor=colors[g], alpha=0.5, capsize=2, lw=1)
            ax.set(xlabel="iteration" if x_key == "iteration" else SECONDS_LABEL,
                   ylabel=f"held-out accuracy, {metric_name(metric, samples)}")
            ax.grid(alpha=0.3)
    # Below the axes, not on them: with long group names (--by keys) an in-axes legend hid the early points.
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(2, max(1, len(labels))))
    fig.suptitle("Seed mean; band: min-max over seeds; bars: mean 95% bootstrap interval over questions",
                 fontsize=9)
    return _save(fig, out, rect=(0, 0.03 * ((len(labels) + 1) // 2 + 1), 1, 1))


def _curricula_colors(groups: dict[str, list[Run]]) -> dict[str, Any]:
    return _colors(sorted({runs[0].curriculum for runs in groups.values()}))


def plot_solve_rates(groups: dict[str, list[Run]], out: Path) -> Path:
    """One panel per algo: share of training questions solved by all (solid) / none (dashed) of their
    attempts per iteration, seed mean, moving average over SMOOTH iterations; a line per curriculum."""
    algos = sorted({runs[0].algo for runs in groups.values()})
    colors = _curricula_colors(groups)
    fig, axes = plt.subplots(1, len(algos), figsize=(5 * len(algos), 3.8), squeeze=False, sharey=True)
    for ax, algo in zip(axes[0], algos, strict=True):
        for runs in (rs for rs in groups.values() if rs[0].algo == algo):
            cur = runs[0].curriculum
            # A curriculum's pool (phase selection, thin) is what uniform sampling would have trained on.
            for source, lw, tag in (("solve", 1.8, ""), ("pool_solve", 0.9, " (pool)")):
                s = solve_rates(runs, source)
                for kind, ls in (("all_solved", "-"), ("none_solved", "--")):
                    if s[kind]["iterations"]:
                        ax.plot(s[kind]["iterations"], moving_average(np.array(s[kind]["mean"]), SMOOTH), ls=ls,
                                lw=lw, color=colors[cur], label=f"{cur}{tag}: solved by {kind.split('_')[0]}")
        ax.set(title=algo, xlabel="iteration", ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("share of training questions")
    fig.suptitle(f"Training questions solved by all / none of their attempts (seed mean, moving average of "
                 f"{SMOOTH} iterations)", fontsize=9)
    return _save(fig, out)


def plot_diagnostics(group: str, runs: list[Run], out: Path) -> tuple[Path, str]:
    """Plateau diagnostics of one group (seed mean): train reward, entropy, KL to the reference, grad
    norm, solve shares, held-out accuracy by level. Returns the path and a note on the level panel."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    panels = [("train/reward", "train reward", True), ("learner/entropy", "entropy", False),
              ("learner/kl_ref", "KL to the reference policy", False), ("learner/grad_norm", "grad norm", False)]
    for ax, (key, title, smooth) in zip(axes.flat, panels, strict=False):
        its, y = row_series(runs, key)
        if smooth and len(y):
            ax.plot(its, y, color="0.7", lw=0.8, label="per iteration")
            ax.plot(its, moving_average(y, SMOOTH), color="tab:blue", label=f"moving average ({SMOOTH})")
            ax.legend(fontsize=7)
        elif len(y):
            ax.plot(its, y, color="tab:blue")
        ax.set(title=title, xlabel="iteration")
    ax = axes.flat[4]
    s = solve_rates(runs)
    for kind, ls in (("all_solved", "-"), ("none_solved", "--")):
        if s[kind]["iterations"]:
            ax.plot(s[kind]["iterations"], moving_average(np.array(s[kind]["mean"]), SMOOTH), ls=ls, color="tab:blue",
                    label=f"solved by {kind.split('_')[0]}")
    ax.set(title=f"training questions (moving average {SMOOTH})", xlabel="iteration", ylim=(0, 1))
    ax.legend(fontsize=7)
    ax = axes.flat[5]
    la = level_accuracy(runs)
    cmap = plt.get_cmap("viridis")
    for i, (lv, series) in enumerate(la["levels"].items()):
        ax.plot(list(series), list(series.values()), marker="o", ms=3, color=cmap(i / max(len(la["levels"]) - 1, 1)),
                label=f"level {lv}")
    source = "greedy" if la["phase"] == "eval_greedy" else f"mean@{runs[0].samples}"
    ax.set(title=f"held-out accuracy by level ({source})", xlabel="iteration", ylim=(0, 1))
    if la["levels"]:
        ax.legend(fontsize=6, ncol=2)
    else:
        ax.text(0.5, 0.5, la["note"] or "no per-question eval rewards", ha="center", va="center", wrap=True,
                fontsize=7, transform=ax.transAxes)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(f"{group}: mean over {len(runs)} seed(s)", fontsize=10)
    return _save(fig, out), la["note"]
