"""docs/reference/metrics.md: every logged metric with its unit and meaning, grouped by prefix (rlreason.metrics)."""

from __future__ import annotations

from rlreason.metrics import METRICS, PREFIXES
from rlreason.reference import markdown as md

PATH = "docs/reference/metrics.md"


def render() -> str:
    lines = [
        md.GENERATED.format(source="rlreason/metrics.py"), "",
        "# Metrics reference", "",
        "Every metric a training run logs: one row per iteration in the run dir's `metrics.jsonl` "
        "(`iteration` is the step; iteration 0 holds the first eval), and the same keys in W&B with "
        "`logger=wandb`. A `{placeholder}` stands for a part of the key that varies (`eval/mean@{n}`: "
        "`eval/mean@16`). `python -m rlreason.describe KEY` prints a metric's entry too "
        "(`python -m rlreason.describe mc/dedup_ratio`).", "",
        "| Prefix | What it covers |", "|---|---|",
        *[f"| [{md.code(p + '/')}](#{p}) | {md.text(about)} |" for p, about in PREFIXES.items()], "",
    ]
    for prefix, about in PREFIXES.items():
        rows = [[md.code(m.name), md.text(m.unit), md.text(m.meaning), md.text(m.when)]
                for m in METRICS if m.name.split("/", 1)[0] == prefix]
        lines += [f"## {prefix}", "", md.text(about[0].upper() + about[1:]) + ".", "",
                  *md.table(["Metric", "Unit", "Meaning", "Logged"], rows), ""]
    return "\n".join(lines).rstrip() + "\n"
