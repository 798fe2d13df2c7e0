"""The environment contract (issue 35): what a multi-turn episode's environment class provides.

An environment is built per episode from the question's record and a seed; it must be a deterministic
function of (record, seed, actions so far), so that an episode is reset to any mid-episode state by
building a new instance and replaying the recorded actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass
class Step:
    observation: str  # text that follows the action in the transcript ("" = none)
    reward: float | dict[str, float] = 0.0  # this turn's reward; a dict = components, as reward functions return
    done: bool = False


@runtime_checkable
class Environment(Protocol):  # a protocol: a user's class need not inherit from it
    # End-of-turn stop strings: the engine ends a turn at one of them, and the stop string stays in the
    # action text (and its tokens).
    stop: tuple[str, ...] = ("\n",)
    max_turns: int | None = None  # the class's own turn cap (env.max_turns caps it further)

    def __init__(self, record: dict, seed: int): ...  # record = Question.row(); seed = the episode's seed

    def reset(self) -> str: ...  # first observation: text after the prompt, before turn 1 ("" = none)

    def step(self, action: str) -> Step | tuple[str, float | dict, bool]: ...  # (observation, reward, done)
