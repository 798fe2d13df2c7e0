"""Held-out evaluation: n samples per question at low temperature, plus greedy decoding."""

from __future__ import annotations

from collections import Counter

from rlreason.data.record import Question
from rlreason.rollout import Group, Roller


def score_groups(groups: list[Group]) -> dict[str, float]:
    """Mean accuracy over all samples, maj@n (majority of extracted answers) and pass@n, all counting
    successes (Episode.solved: the `correct` verdict), whatever the reward's scale."""
    mean = [sum(ep.solved for ep in g) / len(g) for g in groups]
    passed = [float(any(ep.solved for ep in g)) for g in groups]
    maj = []
    for g in groups:
        votes = Counter(ep.extracted for ep in g if ep.extracted is not None)
        if not votes:
            maj.append(0.0)
            continue
        top = votes.most_common(1)[0][0]  # ties: the answer seen first
        maj.append(float(any(ep.solved for ep in g if ep.extracted == top)))
    n = max(len(groups), 1)
    return {"mean": sum(mean) / n, "maj": sum(maj) / n, "pass": sum(passed) / n}


def component_means(episodes: list, prefix: str) -> dict[str, float]:
    """`prefix/<name>`: the mean of each component of a reward function's dicts (reward.fn) over all the
    episodes, those without one (truncated, timeout, error: reward 0) counting 0, so the weighted sum of
    the means is the mean reward. Nothing for the built-in checkers."""
    sums: dict[str, float] = {}
    for ep in episodes:
        for name, value in (ep.components or {}).items():
            sums[name] = sums.get(name, 0.0) + value
    return {f"{prefix}/{name}": total / len(episodes) for name, total in sums.items()}


def headline(greedy: bool, choice: str) -> str:
    """Which eval metric is eval/accuracy: "greedy" or "mean" (mean@n, the VinePPO paper's headline)."""
    return "greedy" if greedy and choice == "greedy" else "mean"


def evaluate(roller: Roller, questions: list[Question], n: int, temperature: float, greedy: bool,
             top_p: float | None = None, headline_metric: str = "greedy"
             ) -> tuple[dict[str, float], list[Group], list[Group]]:
    """Returns eval/* metrics, the sampled groups and the greedy groups (empty without greedy), for the
    stats store and the samples table.

    `eval/accuracy` is greedy accuracy when greedy is on and `headline_metric` is "greedy", else mean@n.
    `top_p` None samples with the roller's (the rollout's) nucleus.
    """
    groups = roller(questions, n, temperature=temperature, top_p=top_p, phase="eval_sampled")
    s = score_groups(groups)
    metrics = {f"eval/mean@{n}": s["mean"], f"eval/maj@{n}": s["maj"], f"eval/pass@{n}": s["pass"]}
    greedy_groups = roller(questions, 1, temperature=0.0, phase="eval_greedy") if greedy else []
    if greedy:
        metrics["eval/greedy"] = score_groups(greedy_groups)["mean"]
    metrics |= component_means([ep for g in groups for ep in g], "eval/reward")
    metrics["eval/accuracy"] = metrics["eval/greedy"] if headline(greedy, headline_metric) == "greedy" else s["mean"]
    return metrics, groups, greedy_groups


# --- the full report of `python -m rlreason.eval` -------------------------------------------------


def accuracy(greedy: list[Group] | None, sampled: list[Group] | None, n: int) -> dict[str, float]:
    """greedy accuracy, mean@n, maj@n and pass@n, for whichever of the two decodings ran."""
    out: dict[str, float] = {}
    if greedy:
        out["greedy"] = score_groups(greedy)["mean"]
    if sampled:
        s = score_groups(sampled)
        out |= {f"mean@{n}": s["mean"], f"maj@{n}": s["maj"], f"pass@{n}": s["pass"]}
    return out


def response_stats(groups: list[Group]) -> dict[str, float]:
    """Length of the responses in tokens (mean, p50, p95), and the fractions cut at max_new_tokens
    (truncated) and finished without an answer the grader could read (no_answer)."""
    import numpy as np

    episodes = [ep for g in groups for ep in g]
    if not episodes:
        return {"responses": 0}
    tokens = np.array([len(ep.response_ids) for ep in episodes], dtype=float)
    return {
        "responses": len(episodes),
        "tokens_mean": float(tokens.mean()),
        "tokens_p50": float(np.percentile(tokens, 50)),
        "tokens_p95": float(np.percentile(tokens, 95)),
        "truncated": sum(ep.finish_reason == "length" for ep in episodes) / len(episodes),
        "no_answer": sum(ep.reason == "no_answer" for ep in episodes) / len(episodes),
    }


def summarize(questions: list[Question], greedy: list[Group] | None, sampled: list[Group] | None,
              n: int) -> dict:
    """Every metric of an eval; `greedy` / `sampled` are groups aligned with `questions` (or None).

    Breakdowns by level (MATH's 1-5, arith's chain length) and by subject, when the questions have them.
    """
    report: dict = {"questions": len(questions), **accuracy(greedy, sampled, n)}
    for name, groups in (("greedy", greedy), ("sampled", sampled)):  # a reward function's components
        if parts := component_means([ep for g in groups or [] for ep in g], "mean"):
            report.setdefault("reward_components", {})[name] = parts
    for key, of in (("by_level", lambda q: q.level), ("by_subject", lambda q: q.meta.get("subject"))):
        values = sorted({of(q) for q in questions if of(q) is not None})
        if values:
            report[key] = {}
            for v in values:
                idx = [i for i, q in enumerate(questions) if of(q) == v]
                part = [[gs[i] for i in idx] if gs else None for gs in (greedy, sampled)]
                report[key][str(v)] = {"questions": len(idx), **accuracy(part[0], part[1], n)}
    report["responses"] = {name: response_stats(gs) for name, gs in (("greedy", greedy), ("sampled", sampled)) if gs}
    return report


def markdown(report: dict, label: str) -> str:
    """The report as short markdown tables: the headline row, then the breakdowns."""
    acc = [k for k in report if k == "greedy" or "@" in k]
    which = "sampled" if "sampled" in report["responses"] else "greedy"
    r = report["responses"][which]
    lines = [f"| {label} | questions | {' | '.join(acc)} | tokens mean / p50 / p95 ({which}) | truncated | "
             "no answer |",
             "|---" * (len(acc) + 5) + "|",
             f"| | {report['questions']} | {' | '.join(f'{report[k]:.1%}' for k in acc)} | "
             f"{r['tokens_mean']:.0f} / {r['tokens_p50']:.0f} / {r['tokens_p95']:.0f} | {r['truncated']:.1%} | "
             f"{r['no_answer']:.1%} |"]
    for key, title in (("by_level", "level"), ("by_subject", "subject")):
        if key in report:
            lines += ["", f"| {title} | questions | {' | '.join(acc)} |", "|---" * (len(acc) + 2) + "|"]
            lines += [f"| {v} | {m['questions']} | {' | '.join(f'{m[k]:.1%}' for k in acc)} |"
                      for v, m in report[key].items()]
    return "\n".join(lines)
