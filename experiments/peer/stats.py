"""Learning curves over seeds, and whether two frameworks differ by more than seed noise."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

from peer.tdist import t_quantile


def load_runs(directory: str | Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]


LEVEL = 0.95  # two-sided confidence level of every interval


def canonical(framework: str) -> str:
    """Run records from before --algo named TRL's GRPO run plain "trl"."""
    return "trl-grpo" if framework == "trl" else framework


def baseline_of(framework: str) -> str | None:
    """The TRL run a framework is compared with: the same algorithm (rlreason-rloo -> trl-rloo); TRL's GRPO
    for rlreason algorithms TRL lacks (vineppo) and engine variants (rlreason-grpo-hf -> trl-grpo)."""
    if framework.startswith("trl"):
        return None
    algo = framework.removeprefix("rlreason-").split("-")[0]
    return f"trl-{algo}" if algo in ("grpo", "rloo") else "trl-grpo"


def spread(values: list[float]) -> dict[str, Any]:
    """mean, std, min, max, and the mean's t-interval at LEVEL (None with one value: no interval)."""
    n, mean = len(values), statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = t_quantile(0.5 + LEVEL / 2, n - 1) * std / math.sqrt(n) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(values), "max": max(values),
            "ci": [mean - half, mean + half] if half is not None else None, "values": values}


def curves(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{framework: {"acc": {step: spread of greedy accuracy}, "s_per_step": spread, "seeds": [...]}}.
    A step appears only where every seed of that framework has an eval."""
    out: dict[str, dict[str, Any]] = {}
    for fw in sorted({canonical(r["framework"]) for r in runs}):
        mine = sorted((r for r in runs if canonical(r["framework"]) == fw), key=lambda r: r["seed"])
        seeds = [r["seed"] for r in mine]
        if len(set(seeds)) < len(seeds):  # e.g. an old "trl-s0.json" beside "trl-grpo-s0.json"
            raise ValueError(f"{fw}: seed recorded twice ({seeds}); remove one of the run files")
        by_step = [{e["step"]: e["accuracy"] for e in r["evals"]} for r in mine]
        steps = sorted(set.intersection(*(set(b) for b in by_step)))
        out[fw] = {"seeds": [r["seed"] for r in mine],
                   "acc": {s: spread([b[s] for b in by_step]) for s in steps},
                   "s_per_step": spread([r["s_per_step"] for r in mine])}
        cpu = [r["cpu_s_per_step"] for r in mine if r.get("cpu_s_per_step") is not None]
        if cpu:  # runs recorded before the CPU clock existed have none
            out[fw]["cpu_s_per_step"] = spread(cpu)
    return out


def compare(a: list[float], b: list[float]) -> dict[str, Any]:
    """mean(b) - mean(a) with Welch's standard error, its Welch-Satterthwaite degrees of freedom and
    t-interval at LEVEL (None when a side has one value, or both have no spread), and the exact
    two-sided permutation p-value (every way to split the pooled values into groups of len(a) and
    len(b); no normality assumed)."""
    diff = statistics.fmean(b) - statistics.fmean(a)
    parts = [statistics.variance(x) / len(x) if len(x) > 1 else None for x in (a, b)]
    se = math.sqrt(sum(v for v in parts if v is not None))
    df = ci = None
    if None not in parts and se > 0:
        df = se ** 4 / sum(v ** 2 / (len(x) - 1) for v, x in zip(parts, (a, b)))
        half = t_quantile(0.5 + LEVEL / 2, df) * se
        ci = [diff - half, diff + half]
    pooled, n = a + b, len(a)
    extreme = total = 0
    for idx in itertools.combinations(range(len(pooled)), n):
        left = [pooled[i] for i in idx]
        right = [pooled[i] for i in range(len(pooled)) if i not in idx]
        total += 1
        extreme += abs(statistics.fmean(right) - statistics.fmean(left)) >= abs(diff) - 1e-12
    return {"diff": diff, "se": se, "df": df, "ci": ci, "p_perm": extreme / total}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Curves per framework and, for each rlreason run against its TRL baseline (baseline_of), the
    difference at every eval step both have and in seconds (and CPU seconds) per step."""
    c = curves(runs)
    tests: dict[str, dict[str, Any]] = {}
    for fw in c:
        base = baseline_of(fw)
        if base is None or base not in c:
            continue
        shared = sorted(set(c[fw]["acc"]) & set(c[base]["acc"]))
        tests[fw] = {"baseline": base,
                     "acc": {s: compare(c[base]["acc"][s]["values"], c[fw]["acc"][s]["values"]) for s in shared}}
        for clock in ("s_per_step", "cpu_s_per_step"):
            if clock in c[fw] and clock in c[base]:
                tests[fw][clock] = compare(c[base][clock]["values"], c[fw][clock]["values"])
    return {"curves": c, "vs_trl": tests, "level": LEVEL}


def _interval(ci: list[float] | None, scale: float = 100.0, signed: bool = False) -> str:
    if ci is None:
        return "[n/a]"
    f = "{:+.1f}" if signed else "{:.1f}"
    if scale == 1.0:
        f = f.replace(".1f", ".2f")
    return "[" + f.format(scale * ci[0]) + ", " + f.format(scale * ci[1]) + "]"


def table(summary: dict[str, Any]) -> str:
    """Rows: framework x eval step, accuracy mean [95% interval] (min-max) over seeds, and rlreason minus
    its TRL baseline with the difference's interval; then seconds per step, the same way."""
    pct = f"{100 * summary.get('level', LEVEL):.0f}%"
    lines = [f"{'framework':<20}{'step':>6}  {'greedy acc % mean [' + pct + ' CI] (min-max)':<38}"
             f"{'minus TRL [' + pct + ' CI] (perm p)':<34}"]
    for fw, c in summary["curves"].items():
        t = summary["vs_trl"].get(fw, {})
        for step, a in c["acc"].items():
            d = t.get("acc", {}).get(step) or t.get("acc", {}).get(str(step))  # str: read back from JSON
            vs = f"{100 * d['diff']:+.1f} {_interval(d['ci'], signed=True)} (p={d['p_perm']:.2f})" if d else ""
            cell = f"{100 * a['mean']:.1f} {_interval(a['ci'])} ({100 * a['min']:.1f}-{100 * a['max']:.1f})"
            lines.append(f"{fw:<20}{step:>6}  {cell:<38}{vs:<34}")
        for clock, label in (("s_per_step", "s/step"), ("cpu_s_per_step", "cpu/st")):
            if clock not in c:
                continue
            sp, d = c[clock], t.get(clock)
            vs = f"{d['diff']:+.2f} {_interval(d['ci'], 1.0, True)} (p={d['p_perm']:.2f})" if d else ""
            cell = f"{sp['mean']:.2f} {_interval(sp['ci'], 1.0)} ({sp['min']:.2f}-{sp['max']:.2f})"
            lines.append(f"{fw:<20}{label:>6}  {cell:<38}{vs:<34}")
        lines.append(f"{'':<20}{'':>6}  seeds {c['seeds']}" + (f"; against {t['baseline']}" if t else ""))
    lines.append("s/step: wall seconds per step, cpu/st: process CPU seconds per step; eval and checkpoints excluded")
    return "\n".join(lines)
