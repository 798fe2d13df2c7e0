"""The policy objective's variants as settings: algo.clip_eps_high, algo.loss_agg, algo.ratio_level.

Torch-free, so validation (rlreason/validate.py) reads the names and checks them from here before any
compute; rlreason/algo/losses.py computes them, docs/losses.md tables them with their papers.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

# verl's names (verl/trainer/ppo/core_algos.py agg_loss): DAPO's, GRPO's and Dr.GRPO's aggregations.
LOSS_AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
RATIO_LEVELS = ("token", "sequence")


def loss_agg(algo: Any) -> str:
    """algo.loss_agg, or its default when null: token-mean, what the learner has always computed (a
    minibatch's token terms summed over its valid tokens); under ratio_level=sequence seq-mean-token-mean,
    GSPO's own objective (the paper's 1/G sum_i 1/|y_i| sum_t; verl's compute_policy_loss_gspo always
    aggregates so)."""
    if algo.loss_agg is not None:
        return algo.loss_agg
    return "seq-mean-token-mean" if algo.ratio_level == "sequence" else "token-mean"


def clip_eps_high(algo: Any) -> float:
    """The upper clip range: algo.clip_eps_high, null = algo.clip_eps (symmetric PPO)."""
    return algo.clip_eps if algo.clip_eps_high is None else algo.clip_eps_high


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    if value in allowed:
        return []
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return [f"{key}={value!r} is not one of {', '.join(allowed)}{hint}"]


def objective_problems(algo: Any) -> list[str]:
    """What is wrong with the objective's settings, one line each (validate() adds them to its list)."""
    problems = _choice("algo.ratio_level", algo.ratio_level, RATIO_LEVELS)
    if algo.loss_agg is not None:
        problems += _choice("algo.loss_agg", algo.loss_agg, LOSS_AGGS)
    high = algo.clip_eps_high
    if high is not None and not (math.isfinite(high) and high >= algo.clip_eps):
        problems.append(f"algo.clip_eps_high={high} must be >= algo.clip_eps={algo.clip_eps} (clip-higher widens "
                        "the upper clip only), or null for the symmetric clip")
    return problems
