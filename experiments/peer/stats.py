"""Learning curves over seeds, and whether two frameworks differ by more than seed noise."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any


def load_runs(directory: str | Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]


def spread(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def curves(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{framework: {"acc": {step: spread of greedy accuracy}, "s_per_step": spread, "seeds": [...]}}.
    A step appears only where every seed of that framework has an eval."""
    out: dict[str, dict[str, Any]] = {}
    for fw in sorted({r["framework"] for r in runs}):
        mine = sorted((r for r in runs if r["framework"] == fw), key=lambda r: r["seed"])
        by_step = [{e["step"]: e["accuracy"] for e in r["evals"]} for r in mine]
        steps = sorted(set.intersection(*(set(b) for b in by_step)))
        out[fw] = {"seeds": [r["seed"] for r in mine],
                   "acc": {s: spread([b[s] for b in by_step]) for s in steps},
                   "s_per_step": spread([r["s_per_step"] for r in mine])}
        cpu = [r["cpu_s_per_step"] for r in mine if r.get("cpu_s_per_step") is not None]
        if cpu:  # runs recorded before the CPU clock existed have none
            out[fw]["cpu_s_per_step"] = spread(cpu)
    return out


def compare(a: list[float], b: list[float]) -> dict[str, float]:
    """mean(b) - mean(a), Welch's standard error, and the exact two-sided permutation p-value (every
    way to split the pooled values into groups of len(a) and len(b); no normality assumed)."""
    diff = statistics.fmean(b) - statistics.fmean(a)
    var = sum(statistics.variance(x) / len(x) for x in (a, b) if len(x) > 1)
    pooled, n = a + b, len(a)
    extreme = total = 0
    for idx in itertools.combinations(range(len(pooled)), n):
        left = [pooled[i] for i in idx]
        right = [pooled[i] for i in range(len(pooled)) if i not in idx]
        total += 1
        extreme += abs(statistics.fmean(right) - statistics.fmean(left)) >= abs(diff) - 1e-12
    return {"diff": diff, "se": math.sqrt(var), "p_perm": extreme / total}


def summarise(runs: list[dict[str, Any]], baseline: str = "trl") -> dict[str, Any]:
    """Curves per framework and, at each step they share, every other framework against `baseline`."""
    c = curves(runs)
    tests: dict[str, dict[int, dict[str, float]]] = {}
    if baseline in c:
        for fw in c:
            if fw == baseline:
                continue
            shared = sorted(set(c[fw]["acc"]) & set(c[baseline]["acc"]))
            tests[fw] = {s: compare(c[baseline]["acc"][s]["values"], c[fw]["acc"][s]["values"]) for s in shared}
    return {"curves": c, f"vs_{baseline}": tests}


def table(summary: dict[str, Any], baseline: str = "trl") -> str:
    """Rows: framework x step, accuracy mean ± std [min, max] over seeds, then the difference to the baseline."""
    lines = [f"{'framework':<22}{'step':>6}  {'greedy acc: mean ± std [min, max]':<36}{'vs ' + baseline:>24}"]
    for fw, c in summary["curves"].items():
        for step, a in c["acc"].items():
            t = summary[f"vs_{baseline}"].get(fw, {}).get(step)
            vs = f"{100 * t['diff']:+.1f} ± {100 * t['se']:.1f} (p={t['p_perm']:.2f})" if t else ""
            cell = f"{100 * a['mean']:.1f} ± {100 * a['std']:.1f} [{100 * a['min']:.1f}, {100 * a['max']:.1f}]"
            lines.append(f"{fw:<22}{step:>6}  {cell:<36}{vs:>24}")
        sp = c["s_per_step"]
        lines.append(f"{fw:<22}{'s/step':>6}  {sp['mean']:.2f} [{sp['min']:.2f}, {sp['max']:.2f}] over seeds "
                     f"{c['seeds']} (eval and checkpoints excluded)")
        if "cpu_s_per_step" in c:
            cp = c["cpu_s_per_step"]
            lines.append(f"{fw:<22}{'cpu/st':>6}  {cp['mean']:.2f} [{cp['min']:.2f}, {cp['max']:.2f}] process CPU s per step ({cp['n']} runs)")
    return "\n".join(lines)
