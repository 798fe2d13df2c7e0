"""The grader as the loop sees it: seconds spent grading, and the verdicts that were failures to grade.

`timeout` and `error` verdicts score 0 and the run goes on; they are counted per iteration
(`reward/timeout`, `reward/error`), and the first of each kind is shown once with its traceback, so a
broken reward function is seen at once rather than read off a flat curve. When *every* response graded
since the last `take()` failed, the function is broken, not the responses: `check()` stops the run with
the function's own error.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable

FAILURES = ("timeout", "error")


class RewardFailed(RuntimeError):
    """Every response of an iteration failed to grade; the message carries the first failure's detail."""


class GradeMeter:
    def __init__(self, grader, say: Callable[[str], None] | None = None):
        self.grader, self.seconds = grader, 0.0
        self.say = say or (lambda text: print(text, file=sys.stderr))
        self.counts: Counter[str] = Counter()  # verdict reasons since the last take()
        self._first: dict[str, str] = {}  # the first detail of each failure kind since the last take()
        self._shown: set[str] = set()  # failure kinds already shown (once per run)

    def grade(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            verdicts = self.grader.grade(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
        return self.record(verdicts)

    def record(self, verdicts):
        """Count `verdicts` as this grader's (env.cls: episodes whose steps timed out or failed)."""
        for v in verdicts:
            self.counts[v.reason] += 1
            if v.reason in FAILURES:
                self._first.setdefault(v.reason, v.detail or "(no detail)")
                if v.reason not in self._shown:
                    self._shown.add(v.reason)
                    self.say(f"rlreason: a response's grading ended in {v.reason} (reward 0; shown once, the rest "
                             f"are counted in reward/{v.reason}):\n{(v.detail or '').rstrip()}")
        return verdicts

    def check(self, where: str = "this iteration") -> None:
        """Raise RewardFailed when every response graded since the last take() was a timeout or an error."""
        graded = sum(n for reason, n in self.counts.items() if reason != "truncated")
        failed = sum(self.counts[r] for r in FAILURES)
        if graded and failed == graded:
            kind = max(FAILURES, key=lambda r: self.counts[r])
            raise RewardFailed(f"every one of the {graded} responses graded in {where} failed ({self.counts['error']} "
                               f"error, {self.counts['timeout']} timeout): the reward is broken, not the responses. "
                               f"The first {kind}:\n{self._first[kind].rstrip()}")

    def take(self) -> dict[str, float]:
        """reward/timeout and reward/error since the last take() (counts of responses), then reset."""
        out = {f"reward/{r}": float(self.counts[r]) for r in FAILURES}
        self.counts, self._first = Counter(), {}
        return out

    def close(self) -> None:
        self.grader.close()
