"""MAE against the ground truth and accuracy at ranking two alternative next steps (pure functions).

`values[name][i]` is estimator `name`'s value of prefix i ("truth" and "truth_se" are the ground truth
and its standard error); each state is a triple (s, s + a1, s + a2) of prefix indices.

Ranking (this analysis): a pair counts when its true values differ by more than a margin (a fixed
`margin`, or by default twice the standard error of the truth's difference, 2 sqrt(se1^2 + se2^2)), so
that "truth" is sure of the order; an estimator scores 1 when its difference has the truth's sign, 1/2
when it ties, 0 otherwise. The reference's rule (McGill-NLP/VinePPO action_ranking_analyzer.py
`_plot_ranking_performance`) is reported beside it: every pair counts, and a pair is right only when
(true1 - true2) (est1 - est2) > 0, so ties, including ties of the truth, count as wrong.
"""

from __future__ import annotations

import math


def rank_score(d_true: float, d_est: float) -> float:
    if d_est == 0:
        return 0.5
    return 1.0 if (d_est > 0) == (d_true > 0) else 0.0


def pair_margin(se1: float, se2: float, margin: float | None) -> float:
    return margin if margin is not None else 2.0 * math.sqrt(se1 ** 2 + se2 ** 2)


def _mean_se(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return mean, math.sqrt(var / len(xs))


def summarize(values: dict[str, list[float]], states: list[tuple[int, int, int]], estimators: list[str],
              margin: float | None) -> dict:
    truth, se = values["truth"], values["truth_se"]
    occurrences = [i for triple in states for i in triple]  # s, s + a1, s + a2 of every state
    pairs = [(a1, a2) for _, a1, a2 in states]
    counted = [(a, b) for a, b in pairs if abs(truth[a] - truth[b]) > pair_margin(se[a], se[b], margin)]
    used = sorted(set(occurrences))
    out = {
        "values": len(occurrences),
        "pairs": len(pairs),
        "pairs_counted": len(counted),
        "truth_se_mean": sum(se[i] for i in used) / len(used) if used else None,
        "truth_se_max": max((se[i] for i in used), default=None),
        "estimators": {},
    }
    for name in estimators:
        est = values[name]
        mae, mae_se = _mean_se([abs(est[i] - truth[i]) for i in occurrences])
        acc = None
        if counted:
            acc = sum(rank_score(truth[a] - truth[b], est[a] - est[b]) for a, b in counted) / len(counted)
        reference = None
        if pairs:
            reference = sum((truth[a] - truth[b]) * (est[a] - est[b]) > 0 for a, b in pairs) / len(pairs)
        out["estimators"][name] = {
            "mae": mae, "mae_se": mae_se, "rank_acc": acc,
            "rank_acc_se": math.sqrt(acc * (1 - acc) / len(counted)) if acc is not None else None,
            "rank_acc_reference_rule": reference,
        }
    return out
