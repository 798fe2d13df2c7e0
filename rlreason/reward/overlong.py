"""DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476 §3.4): reward.overlong.

With the budget L = rollout.max_new_tokens and the buffer B = reward.overlong.buffer_tokens, a response of
|y| tokens gets

    0                              if |y| <= L - B
    (L - B - |y|) / B * penalty    if L - B < |y| <= L   (0 down to -penalty at the budget)
    -penalty                       beyond (cannot happen: generation stops at L)

added to its reward, as verl's DAPO reward manager (verl/workers/reward_manager/dapo.py:
min(-(|y| - (L - B)) / B * penalty_factor, 0)). The penalty is its own reward component, `overlong`, so
it is logged as `reward/overlong` (the mean over the batch's responses, like a reward function's parts).

What it touches and what it does not:
- The verdict's reason is kept, so success (accuracy, pass@k, the curriculum's p-hat, train/success)
  counts correct answers, never the penalised reward.
- Training rewards only: the rollouts (and a curriculum's selection rollouts, which may be trained on)
  and VinePPO's Monte-Carlo continuations. The held-out eval's rewards are the grader's.
- A continuation is graded as a full response (the trajectory's prefix + the continuation), so its
  length is the prefix's response tokens + its own: V(s) is the expected penalised reward of a response
  through s, the return the trajectory itself gets, and the advantages credit the steps that lead to
  shorter answers.
- Anything that compares rewards sees it: GRPO/RLOO baselines (DAPO's intent), and curriculum=
  filter_groups / skip_zero_variance, which then count a group whose answers agree but whose lengths
  differ as mixed (DAPO's dynamic sampling filters on accuracy instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from rlreason.reward.grader import Verdict

COMPONENT = "overlong"


def overlong_penalty(length: int, max_tokens: int, buffer_tokens: int, penalty: float) -> float:
    """The penalty (<= 0) of a response of `length` tokens under the budget `max_tokens`."""
    start = max_tokens - buffer_tokens
    if penalty == 0 or length <= start:
        return 0.0
    return max((start - length) / buffer_tokens * penalty, -penalty)


@dataclass(frozen=True)
class Overlong:
    max_tokens: int
    buffer_tokens: int
    penalty: float

    def __call__(self, length: int) -> float:
        return overlong_penalty(length, self.max_tokens, self.buffer_tokens, self.penalty)

    def apply(self, verdicts: list[Verdict], lengths: list[int]) -> list[Verdict]:
        """Each verdict with its response's penalty added to the reward and kept as the `overlong`
        component; the reason (success) unchanged."""
        out = []
        for v, n in zip(verdicts, lengths, strict=True):
            p = self(n)
            out.append(replace(v, reward=v.reward + p, components={**(v.components or {}), COMPONENT: p}))
        return out


def from_config(reward_cfg: Any, max_new_tokens: int) -> Overlong | None:
    """The penalty reward.overlong asks for, or None when it is off (penalty 0)."""
    o = getattr(reward_cfg, "overlong", None)  # a run dir's config from before reward.overlong has none
    if o is None or not o.penalty:
        return None
    return Overlong(max_new_tokens, o.buffer_tokens, o.penalty)


def overlong_problems(reward_cfg: Any, max_new_tokens: int) -> list[str]:
    """reward.overlong's values, checked before any compute (validate() adds these to its list)."""
    o, problems = reward_cfg.overlong, []
    if o.buffer_tokens < 0:
        problems.append(f"reward.overlong.buffer_tokens={o.buffer_tokens} must be >= 0")
    elif o.buffer_tokens >= max_new_tokens:
        problems.append(f"reward.overlong.buffer_tokens={o.buffer_tokens} must be < rollout.max_new_tokens="
                        f"{max_new_tokens}: the penalty ramps up over the last buffer_tokens tokens of the budget")
    if not math.isfinite(o.penalty) or o.penalty < 0:
        problems.append(f"reward.overlong.penalty={o.penalty} must be a finite number >= 0 (0: off)")
    elif o.penalty > 0 and o.buffer_tokens == 0:
        problems.append(f"reward.overlong.penalty={o.penalty} needs reward.overlong.buffer_tokens >= 1 (the "
                        "length over which the penalty ramps up to its full value)")
    return problems
