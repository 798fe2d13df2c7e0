"""Held-out evaluation: n samples per question at low temperature, plus greedy decoding."""

from __future__ import annotations

from collections import Counter

from rlreason.data.record import Question
from rlreason.rollout import Group, Roller


def score_groups(groups: list[Group]) -> dict[str, float]:
    """Mean accuracy over all samples, maj@n (majority of extracted answers) and pass@n."""
    mean = [sum(ep.reward for ep in g) / len(g) for g in groups]
    passed = [float(any(ep.reward > 0 for ep in g)) for g in groups]
    maj = []
    for g in groups:
        votes = Counter(ep.extracted for ep in g if ep.extracted is not None)
        if not votes:
            maj.append(0.0)
            continue
        top = votes.most_common(1)[0][0]  # ties: the answer seen first
        maj.append(float(any(ep.reward > 0 for ep in g if ep.extracted == top)))
    n = max(len(groups), 1)
    return {"mean": sum(mean) / n, "maj": sum(maj) / n, "pass": sum(passed) / n}


def headline(greedy: bool, choice: str) -> str:
    """Which eval metric is eval/accuracy: "greedy" or "mean" (mean@n, the VinePPO paper's headline)."""
    return "greedy" if greedy and choice == "greedy" else "mean"


def evaluate(roller: Roller, questions: list[Question], n: int, temperature: float, greedy: bool,
             top_p: float | None = None, headline_metric: str = "greedy") -> tuple[dict[str, float], list[Group]]:
    """Returns eval/* metrics and the sampled groups (for the stats store and the samples table).

    `eval/accuracy` is greedy accuracy when greedy is on and `headline_metric` is "greedy", else mean@n.
    `top_p` None samples with the roller's (the rollout's) nucleus.
    """
    groups = roller(questions, n, temperature=temperature, top_p=top_p, phase="eval_sampled")
    s = score_groups(groups)
    metrics = {f"eval/mean@{n}": s["mean"], f"eval/maj@{n}": s["maj"], f"eval/pass@{n}": s["pass"]}
    if greedy:
        greedy_groups = roller(questions, 1, temperature=0.0, phase="eval_greedy")
        metrics["eval/greedy"] = score_groups(greedy_groups)["mean"]
    metrics["eval/accuracy"] = metrics["eval/greedy"] if headline(greedy, headline_metric) == "greedy" else s["mean"]
    return metrics, groups
