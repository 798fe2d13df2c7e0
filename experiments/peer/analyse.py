"""Why do some seeds end lower? Per-run training signals next to each run's outcome.

    python experiments/peer/analyse.py OUT/runs

For every run: greedy accuracy at the start and the end, and over its steps the train reward, policy
entropy, gradient norm (before clipping) and the share of steps it exceeded the clip (TRL's RLOO loss is
a per-sequence sum, rlreason's a token mean: the same direction, a norm ~response length larger, so
clipped more often), share of groups whose 8 rewards are all equal (no GRPO/RLOO signal), response
length and truncation, and the mean level of the questions it drew (where the questions have levels).
Then the rank correlation of each signal with the final accuracy over all runs, and how many questions
two seeds' draws share. The curves with their intervals and the differences: peer_trl.py --aggregate-only.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peer import stats  # noqa: E402
from peer.source import Source  # noqa: E402

# one name per signal: (TRL log key, rlreason metrics key)
SIGNALS = {
    "reward": ("reward", "train/reward"),
    "entropy": ("entropy", "learner/entropy"),
    "grad_norm": ("grad_norm", "learner/grad_norm"),
    "zero_std": ("frac_reward_zero_std", "adv/zero_variance_groups"),
    "length": ("completions/mean_length", "train/response_tokens"),
    "truncated": ("completions/clipped_ratio", "train/truncated"),
}


def signals(run: dict, levels: dict[str, int | None]) -> dict[str, float]:
    rows = run["per_step"]
    col = 0 if run["framework"].startswith("trl") else 1
    half = len(rows) // 2
    out = {"start": run["evals"][0]["accuracy"], "final": run["evals"][-1]["accuracy"]}
    for name, keys in SIGNALS.items():
        vals = [r[keys[col]] for r in rows if keys[col] in r]
        if vals:
            out[f"{name}_1st_half"] = statistics.fmean(vals[:half] or vals)
            out[f"{name}_2nd_half"] = statistics.fmean(vals[half:])
    clip = run.get("settings", {}).get("grad_clip")
    norms = [r[SIGNALS["grad_norm"][col]] for r in rows if SIGNALS["grad_norm"][col] in r]
    if clip and norms:
        out["grad_clipped"] = sum(n > clip for n in norms) / len(norms)
    drawn = [levels.get(q) for step in run["questions"] for q in step]
    if drawn and None not in drawn:
        out["level_drawn"] = statistics.fmean(drawn)  # type: ignore[arg-type]
    return out


def question_levels(run: dict) -> dict[str, int | None]:
    """Question id -> level, from the run's own source (the built-in task, or its JSONL files)."""
    src = run.get("source", "builtin")
    train, _, _ = (Source() if src == "builtin" else Source(**src)).load()
    return {q.id: q.level for q in train}


def rank(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=xs.__getitem__)
    r = [0.0] * len(xs)
    for pos, i in enumerate(order):
        r[i] = float(pos)
    return r


def spearman(xs: list[float], ys: list[float]) -> float:
    rx, ry = rank(xs), rank(ys)
    return statistics.correlation(rx, ry) if len(xs) > 2 else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs")
    a = p.parse_args()
    runs = stats.load_runs(a.runs)
    levels = question_levels(runs[0])
    table = {(r["framework"], r["seed"]): signals(r, levels) for r in runs}
    keys = list(dict.fromkeys(k for s in table.values() for k in s))
    print(f"{'run':<22}" + "".join(f"{k[:14]:>15}" for k in keys))
    for (fw, seed), s in sorted(table.items()):
        print(f"{fw + ' s' + str(seed):<22}" + "".join(f"{s.get(k, float('nan')):>15.3f}" for k in keys))
    finals = [s["final"] for s in table.values()]
    print(f"\nSpearman rank correlation with the final accuracy, all runs pooled (n = {len(finals)}):")
    for k in keys[2:]:
        xs = [s.get(k, float("nan")) for s in table.values()]
        print(f"  {k:<20}{spearman(xs, finals):+.2f}")
    qsets = {key: {q for step in r["questions"] for q in step} for r in runs for key in [(r["framework"], r["seed"])]}
    shared = [len(qsets[x] & qsets[y]) for x, y in itertools.combinations(sorted(qsets), 2)]
    print(f"\nquestions drawn per run: {statistics.fmean(len(v) for v in qsets.values()):.0f}; shared between two "
          f"runs: mean {statistics.fmean(shared):.1f}, max {max(shared)}")


if __name__ == "__main__":
    main()
