"""The shape of a task's values, from value_analysis.json files: how many states are already decided
(truth 0: no continuation succeeds; truth >= 1/2), how far apart two alternative next steps are, and how
the critic's values correlate with the truth (issue 26: arith against Countdown).

    python experiments/value/shape.py experiments/figures/value/value_analysis.json \\
        experiments/figures/countdown-value/value_analysis.json
"""

from __future__ import annotations

import json
import sys

import numpy as np


def shape(checkpoint: dict) -> dict[str, float]:
    p = checkpoint["prefixes"]
    truth = np.array([x["truth"] for x in p])
    critic = np.array([x["critic"] for x in p])
    gaps = np.array([abs(p[s["prefixes"][1]]["truth"] - p[s["prefixes"][2]]["truth"]) for s in checkpoint["states"]])
    return {"prefixes": len(p), "truth_zero": float(np.mean(truth < 0.005)), "truth_half": float(np.mean(truth >= 0.5)),
            "truth_mean": float(truth.mean()), "critic_mean": float(critic.mean()),
            "critic_pearson": float(np.corrcoef(critic, truth)[0, 1]), "step_gap": float(gaps.mean()),
            "step_gap_over_0.1": float(np.mean(gaps > 0.1))}


def main(paths: list[str]) -> int:
    print("| PPO run | iteration | prefixes | truth = 0 | truth ≥ ½ | mean truth | critic mean | Pearson(critic, truth) "
          "| mean \\|V(s+a1) − V(s+a2)\\| | pairs > 0.1 apart |\n|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        d = json.load(open(path))
        for c in d["checkpoints"]:
            s = shape(c)
            print(f"| {d['settings']['run_dir']} | {c['iteration']} | {s['prefixes']} | {s['truth_zero']:.0%} | "
                  f"{s['truth_half']:.0%} | {s['truth_mean']:.3f} | {s['critic_mean']:.2f} | {s['critic_pearson']:+.2f} | "
                  f"{s['step_gap']:.3f} | {s['step_gap_over_0.1']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
