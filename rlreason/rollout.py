"""Rollouts: questions -> prompts -> engine samples -> graded episodes.

An Episode is one sampled response with everything the later rooms need (advantages, the update, the
stats store). A group is the list of episodes for one question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlreason.data.record import Question


@dataclass
class Episode:
    question: Question
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]  # engine's log-probs of response_ids at the sampling temperature
    text: str
    finish_reason: str
    reward: float = 0.0
    reason: str = ""  # grader verdict: correct / wrong / no_answer / truncated / timeout
    advantages: list[float] = field(default_factory=list)  # per response token, filled by the algo
    returns: list[float] = field(default_factory=list)  # ppo: per-token value targets


Group = list[Episode]
