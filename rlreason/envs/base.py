"""The environment contract (`env.cls`): what a user's class provides, and how its answers are read.

A protocol: a user's class need not inherit from `Environment`, it needs the methods.

    class MyEnv:
        stop = ("\\n",)          # end-of-turn stop strings (kept in the action text); EOS ends a turn too
        max_turns = 8           # optional: the class's own turn cap (env.max_turns caps it further)
        def __init__(self, record: dict, seed: int): ...   # record = the question's row; seed = the episode's
        def reset(self) -> str: ...                         # the text after the prompt, before turn 1
        def step(self, action: str) -> Step | tuple[str, float | dict, bool]: ...

An environment must be a deterministic function of (record, seed, actions so far): VinePPO resets an
episode to a mid-episode state by building a fresh instance and replaying the recorded actions, and the
observations it gets back are checked against the recorded ones (rlreason/envs/worker.py).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any


@dataclass
class Step:
    observation: str  # text that follows the action in the transcript ("" = none)
    reward: float | dict[str, float] = 0.0  # this turn's reward; a dict = components, as reward functions return
    done: bool = False


class Environment:
    """The contract as a base class (optional: duck typing is enough)."""

    stop: tuple[str, ...] = ("\n",)
    max_turns: int | None = None

    def __init__(self, record: dict, seed: int) -> None:
        self.record, self.seed = record, seed

    def reset(self) -> str:
        return ""

    def step(self, action: str) -> Step | tuple[str, float | dict[str, float], bool]:
        raise NotImplementedError


class StepError(ValueError):
    """A step's return value that is not a Step or an (observation, reward, done) triple."""


def as_step(value: Any) -> Step:
    """`value` (what step() returned) as a Step of plain values: str, float or dict of floats, bool. Plain,
    because it is sent back from a worker process: a class from the user's file cannot be unpickled there."""
    if isinstance(value, Step):
        obs, reward, done = value.observation, value.reward, value.done
    elif isinstance(value, tuple | list) and len(value) == 3:
        obs, reward, done = value
    else:
        raise StepError(f"step() returned {_short(value)}: expected a Step or an (observation, reward, done) tuple")
    if not isinstance(obs, str):
        raise StepError(f"step()'s observation is {_short(obs)}: expected a str")
    if isinstance(reward, dict):
        parts = {str(k): _number(v) for k, v in reward.items()}
        if not reward or None in parts.values():
            raise StepError(f"step()'s reward {_short(reward)}: a dict's values must be finite numbers")
        reward = parts
    elif (number := _number(reward)) is None:
        raise StepError(f"step()'s reward is {_short(reward)}: expected a finite float or a dict of floats")
    else:
        reward = number
    return Step(str(obs), reward, bool(done))


def _number(v: Any) -> float | None:
    if not isinstance(v, numbers.Real):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _short(v: Any) -> str:
    text = repr(v)
    return f"{text[:80] + '...' if len(text) > 80 else text} ({type(v).__name__})"
