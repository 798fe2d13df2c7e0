"""Does the response budget fit the task? Checked before the engine starts, on the task's gold solutions.

A response cut at `rollout.max_new_tokens` is graded `truncated` (reward 0). A budget shorter than the
task's solutions therefore trains on nothing but zeros, and nothing else says why: the tiny models' 80
tokens would cut nearly every MATH solution. Where the task has gold solutions (GSM8K's `answer`, MATH's
`solution`, arith's and Countdown's generated ones, a JSONL file's `solution` field), a sample of them is
tokenized with the run's tokenizer, as the model would write them (the text plus the token that ends it),
and a run whose budget cuts more than `rollout.max_gold_cut` of them stops with one line naming the
percentile lengths and the override. Tasks without gold solutions (a reward function grading from the
record) are not checked.
"""

from __future__ import annotations

import math

from rlreason.config import ConfigError
from rlreason.data.record import Question

SAMPLE = 1000  # solutions tokenized per check: evenly spaced over the split, deterministic, ~0.1 s


def gold_response(q: Question) -> str | None:
    """The response a model trained on the task's gold solutions would write, or None without one."""
    if q.solution:
        return q.solution
    record = q.record or {}
    if q.source == "countdown" or {"nums", "target"} <= record.keys():
        from rlreason.data import countdown
        from rlreason.model.tasks import countdown_response

        found = countdown.solutions(record["nums"], record["target"], use_all=bool(record.get("use_all")), limit=1)
        return countdown_response(*found[0]) if found else None
    return None


def gold_lengths(questions: list[Question], tokenizer) -> list[int]:
    """Token counts of up to SAMPLE gold responses, each + 1 for the token that ends it (EOS / end of turn)."""
    step = max(1, math.ceil(len(questions) / SAMPLE))
    texts = [t for q in questions[::step] if (t := gold_response(q))]
    if not texts:
        return []
    # verbose=False: a solution longer than the tokenizer's model_max_length is measured, not warned about
    return [len(ids) + 1 for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]


def percentile(sorted_lengths: list[int], p: float) -> int:
    return sorted_lengths[min(len(sorted_lengths) - 1, math.ceil(p / 100 * len(sorted_lengths)) - 1)]


def check_budget(lengths: list[int], max_new_tokens: int, max_cut: float | None, data_name: str) -> str | None:
    """ConfigError when more than `max_cut` of the gold responses are longer than the budget; a note (for the
    log) of the lengths otherwise, None when there is nothing to check."""
    if not lengths or max_cut is None:
        return None
    xs = sorted(lengths)
    cut = sum(n > max_new_tokens for n in xs) / len(xs)
    pct = {p: percentile(xs, p) for p in (50, 90, 99)}
    stats = f"median {pct[50]}, p90 {pct[90]}, p99 {pct[99]}, longest {xs[-1]} tokens, over {len(xs)} solutions"
    if cut > max_cut:
        need = percentile(xs, 100 * (1 - max_cut))
        raise ConfigError(
            f"rollout.max_new_tokens={max_new_tokens} cuts {cut:.0%} of data={data_name}'s gold solutions ({stats}); "
            f"cut responses are graded truncated (reward 0): set rollout.max_new_tokens={need} or more (and "
            f"model.max_model_len to fit it), or rollout.max_gold_cut=null to train at this budget anyway")
    return f"rollout.max_new_tokens={max_new_tokens} cuts {cut:.1%} of data={data_name}'s gold solutions ({stats})"
