"""Built-in outcome reward: is the final answer in a response equal to the gold answer?

Plain numbers (arith, nearly all of GSM8K) are compared in-process, thousands per second. Anything else
goes to math-verify in worker processes with a hard deadline per item (rlreason/reward/pool.py). Nothing
here evaluates model text; only math-verify's LaTeX parser reads it.

`Verdict` is what every grader returns, this one and a user's reward function (function.py) alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rlreason.reward.extract import ORDER, extract_answer
from rlreason.reward.pool import Pool

REASONS = ("correct", "wrong", "no_answer", "truncated", "timeout", "error")
# ASCII digits only: `\d` would also take look-alikes (fullwidth "８", Arabic-Indic "٨"), which Decimal
# reads as 8 but math-verify does not; the same response must get the same grade on either path.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)", re.ASCII)
# Tasks whose numeric gold answer is never matched by a non-numeric response (no math-verify).
STRICT = ("arith", "hash")


@dataclass(frozen=True)
class Verdict:
    reward: float  # the total reward (a user function's components summed with reward.weights)
    reason: str  # one of REASONS: correct / wrong are the success verdicts, the rest failures to grade
    extracted: str | None = None  # the answer read from the response (None when none was, or truncated)
    components: dict[str, float] | None = None  # a user function's named parts, before weighting
    detail: str | None = field(default=None, compare=False)  # why an `error` / `timeout` happened

    @property
    def success(self) -> bool:
        """What accuracy, pass@k, maj@k and the curriculum count: the `correct` verdict."""
        return self.reason == "correct"


def gold_of(item: Any) -> str:
    """The gold answer string of a grading target: a Question (its `answer`) or the string itself."""
    return item if isinstance(item, str) else item.answer


def as_number(s: str) -> Decimal | None:
    """`s` as a number when it is a plain integer/decimal once commas, dollars and spaces are gone."""
    s = s.replace(",", "").replace("\\$", "").replace("$", "").replace(" ", "")
    if len(s) > 64 or not _NUMBER.fullmatch(s):  # longer is no plain answer: let math-verify judge it
        return None
    return Decimal(s)


class Grader:
    """Grades responses against gold answers for one task: math | gsm8k | arith, or the strict checkers
    hash (`#### N` only, no math-verify) and exact (the stripped response equals the gold answer)."""

    def __init__(self, task: str, timeout_s: float = 5.0, workers: int = 2, startup_timeout_s: float = 60.0):
        if task not in ORDER:
            raise ValueError(f"unknown task {task!r}: expected one of {', '.join(ORDER)}")
        if timeout_s <= 0 or workers < 1:
            raise ValueError(f"need timeout_s > 0 and workers >= 1, got {timeout_s}, {workers}")
        self.task = task
        # Starts no process until something needs math-verify.
        late = f"the math-verify workers could not start within reward.startup_timeout_s={startup_timeout_s:g} s"
        self._pool = Pool(workers, timeout_s, math_verify_handler, startup_timeout_s=startup_timeout_s,
                          late_start=late)

    def grade(self, responses: list[str], golds: list[Any], truncated: list[bool] | None = None) -> list[Verdict]:
        """A verdict per response. `golds`: Questions or gold answer strings (the built-in checkers read
        only the answer)."""
        truncated = truncated if truncated is not None else [False] * len(responses)
        golds = [gold_of(g) for g in golds]
        if not len(responses) == len(golds) == len(truncated):
            raise ValueError(f"grade: {len(responses)} responses, {len(golds)} golds, {len(truncated)} flags")
        verdicts: list[Verdict | None] = [None] * len(responses)
        slow: dict[tuple[str, str], list[int]] = {}  # identical pairs are common (VinePPO's MC samples)
        for i, (text, gold, cut) in enumerate(zip(responses, golds, truncated)):
            pred = None if cut else extract_answer(text, self.task)
            if cut or pred is None:
                verdicts[i] = Verdict(0.0, "truncated" if cut else "no_answer")
                continue
            if self.task == "exact":  # string equality, nothing else
                verdicts[i] = _verdict(pred == gold.strip(), pred)
                continue
            a, b = as_number(pred), as_number(gold)
            if b is not None and (a is not None or self.task in STRICT):
                verdicts[i] = _verdict(a == b, pred)
            elif self.task == "hash":  # no math-verify: equal as numbers (above) or as stripped strings
                verdicts[i] = _verdict(pred == gold.strip(), pred)
            else:
                slow.setdefault((pred, gold), []).append(i)
        for key, (status, payload) in zip(slow, self._pool.run(list(slow))):
            reason = payload if status == "ok" else status
            for i in slow[key]:
                verdicts[i] = Verdict(float(reason == "correct"), reason, key[0],
                                      detail=None if status == "ok" else payload)
        return verdicts  # type: ignore[return-value]

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _verdict(ok: bool, pred: str) -> Verdict:
    return Verdict(1.0, "correct", pred) if ok else Verdict(0.0, "wrong", pred)


# --- math-verify, in the pool's worker processes ---


def math_verify_handler(_arg=None):
    """Run in a worker: import math-verify, warm it up, and return the (pred, gold) -> reason check."""
    import logging

    from math_verify import parse, verify

    # Its "timeout disabled" warning: we disable them on purpose, the pool holds the deadline.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # The first parse/verify imports the LaTeX parser and much of sympy lazily (seconds on a fresh
    # install, where nothing is byte-compiled yet): pay it before the worker says it is ready.
    verify(parse("\\boxed{\\frac{1}{2}}", parsing_timeout=None), parse("\\boxed{0.5}", parsing_timeout=None),
           timeout_seconds=None)

    def check(job: tuple[str, str]) -> str:
        pred, gold = job
        try:  # LaTeX math-verify cannot parse is simply no match ("wrong"); other failures are "error"
            g = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
            p = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
            return "correct" if verify(g, p, timeout_seconds=None) else "wrong"
        except Exception:
            return "error"

    return check
