"""The env group's schema: multi-turn environments (rlreason/envs/, docs/environments.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EnvConfig:
    """Multi-turn environments: episodes of turns, each an action the policy writes and the environment's
    observation and reward (docs/environments.md)."""

    # The environment class, built per episode from the question's record: PATH.py:NAME or
    # package.module:NAME (reset() -> first observation, step(action) -> (observation, reward, done)).
    # null: one response per question, graded by the reward (single-turn, as without this group).
    cls: str | None = None
    # The most turns (actions) an episode may take; the class's own max_turns caps it further.
    # null: until the environment says done or rollout.max_new_tokens (actions + observations) runs out.
    max_turns: int | None = None
