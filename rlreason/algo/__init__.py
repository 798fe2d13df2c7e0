"""Advantage estimators: vineppo (MC values), ppo (critic + GAE, computed in the learner), grpo, rloo."""

from __future__ import annotations

from rlreason.algo.advantages import grpo_advantages, rloo_advantages
from rlreason.algo.vineppo import assign_vineppo_advantages
from rlreason.rollout import Group

__all__ = ["assign_outcome_advantages", "assign_vineppo_advantages"]


def assign_outcome_advantages(name: str, groups: list[Group], normalize_std: bool = True) -> dict[str, float]:
    """GRPO / RLOO: one scalar per response from its group's rewards, given to all of its tokens."""
    for g in groups:
        rewards = [ep.reward for ep in g]
        advs = rloo_advantages(rewards) if name == "rloo" else grpo_advantages(rewards, normalize_std)
        for ep, a in zip(g, advs):
            ep.advantages = [a] * len(ep.response_ids)
    zero_var = sum(len({ep.reward for ep in g}) == 1 for g in groups)
    return {"adv/zero_variance_groups": zero_var / max(len(groups), 1)}
