"""Curriculum: the per-attempt stats store and the samplers that choose each iteration's questions."""

from rlreason.curriculum.samplers import (
    SAMPLERS,
    RolloutFn,
    Sampler,
    Selection,
    group_metrics,
    learnability,
    make_sampler,
)
from rlreason.curriculum.store import (
    Attempt,
    QuestionStat,
    SelectionLearnability,
    SolveFractions,
    StatsStore,
    StoreError,
    attempts_from_groups,
)

__all__ = [
    "SAMPLERS", "Attempt", "QuestionStat", "RolloutFn", "Sampler", "Selection", "SelectionLearnability",
    "SolveFractions", "StatsStore", "StoreError", "attempts_from_groups", "group_metrics", "learnability",
    "make_sampler",
]
