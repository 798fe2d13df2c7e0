"""The analysis's markdown table and figure, from the results dict value_analysis.json holds."""

from __future__ import annotations

from pathlib import Path


def _fmt(x: float | None, se: float | None = None, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def markdown(results: dict) -> str:
    s = results["settings"]
    margin = f"margin {s['margin']}" if s["margin"] is not None else "margin 2 x SE of the truth's difference"
    lines = [
        f"Value estimates vs ground truth (MC, K = {s['k_truth']}) on {s['states']} states per checkpoint "
        f"of {s['run_dir']}; ranking: pairs of alternative next steps, {margin}, ties 1/2; "
        "reference rule: all pairs, ties wrong. ± = standard error over states.",
        "",
        "| iteration | states (dropped) | truth SE mean / max | estimator | MAE | rank acc | pairs counted "
        "| reference rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ck in results["checkpoints"]:
        sm, c = ck["summary"], ck["counts"]
        first = (f"| {ck['iteration']} | {c['states']} ({c['dropped']}) | "
                 f"{_fmt(sm['truth_se_mean'])} / {_fmt(sm['truth_se_max'])} ")
        for i, (name, e) in enumerate(sm["estimators"].items()):
            lead = first if i == 0 else "| | | "
            lines.append(f"{lead}| {name} | {_fmt(e['mae'], e['mae_se'])} | {_fmt(e['rank_acc'], e['rank_acc_se'])} "
                         f"| {sm['pairs_counted']}/{sm['pairs']} | {_fmt(e['rank_acc_reference_rule'])} |")
    return "\n".join(lines)


def plot(results: dict, out: Path) -> None:
    """Two panels, MAE and ranking accuracy, one bar per estimator, grouped by checkpoint iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = results["checkpoints"]
    names = list(checkpoints[0]["summary"]["estimators"]) if checkpoints else []
    width = 0.8 / max(len(names), 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "mae", "MAE vs ground truth (lower is better)"),
                           (axes[1], "rank_acc", "Ranking two alternative steps (higher is better)")):
        for j, name in enumerate(names):
            xs, ys, errs = [], [], []
            for i, ck in enumerate(checkpoints):
                e = ck["summary"]["estimators"][name]
                if e[key] is not None:
                    xs.append(i + (j - (len(names) - 1) / 2) * width)
                    ys.append(e[key])
                    errs.append(e[f"{key}_se"] or 0.0)
            ax.bar(xs, ys, width, yerr=errs, capsize=2, label=name)
        labels = [str(ck["iteration"]) for ck in checkpoints]
        if key == "rank_acc":  # how many pairs each accuracy rests on
            labels = [f"{lab}\n{ck['summary']['pairs_counted']} pairs" for lab, ck in zip(labels, checkpoints)]
        ax.set_xticks(range(len(checkpoints)), labels)
        ax.set_xlabel("checkpoint (iteration)")
        ax.set_title(title, fontsize=10)
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1, label="random ranking")
    axes[1].set_ylim(0, 1.05)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(out, dpi=90)
    plt.close(fig)
