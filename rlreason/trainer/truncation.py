"""Responses cut at the budget, watched while training runs (the budget check before compute reads the
task's gold solutions, rlreason/data/budget.py; a model's own responses can still run longer).

A response that reaches `rollout.max_new_tokens` is graded `truncated` (reward 0): an iteration where most
are cut learns mostly from zeros. More than half cut: one warning line, with the share and the fix (the
share itself is the `train/truncated` metric, in metrics.jsonl and W&B). Every response cut for
`trainer.stop_all_truncated` iterations in a row: the run stops with exit status 2 (its last checkpoint
intact), since it can only learn to stop sooner by chance.
"""

from __future__ import annotations

from rlreason.config import ConfigError

WARN_SHARE = 0.5


class TruncationWatch:
    def __init__(self, max_new_tokens: int, stop_after: int):
        self.max_new_tokens, self.stop_after, self.streak = max_new_tokens, stop_after, 0

    def fix(self) -> str:
        return (f"raise rollout.max_new_tokens (now {self.max_new_tokens}; and model.max_model_len to fit it), "
                "or ask for shorter answers in the prompt")

    def __call__(self, iteration: int, share: float) -> str | None:
        """The warning for this iteration, if any; ConfigError once every response was cut `stop_after`
        iterations in a row."""
        self.streak = self.streak + 1 if share >= 1.0 else 0
        if self.stop_after and self.streak >= self.stop_after:
            raise ConfigError(f"every response was cut at rollout.max_new_tokens={self.max_new_tokens} for "
                              f"{self.streak} iterations in a row (iterations {iteration - self.streak + 1}-"
                              f"{iteration}): nothing but truncated responses to learn from; {self.fix()}")
        if share > WARN_SHARE:
            return (f"iteration {iteration}: {share:.0%} of the responses were cut at rollout.max_new_tokens="
                    f"{self.max_new_tokens} (graded truncated, reward 0): {self.fix()}")
        return None
