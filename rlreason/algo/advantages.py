"""Outcome-reward baselines (GRPO, RLOO) and GAE for the PPO critic.

Each function is pure and works on plain lists/tensors, so tests can check them against hand-computed
numbers.
"""

from __future__ import annotations

import statistics


def grpo_advantages(rewards: list[float], normalize_std: bool = True, eps: float = 1e-6) -> list[float]:
    """(r - mean) / std over one question's group; Dr.GRPO (normalize_std=False) drops the std."""
    mean = sum(rewards) / len(rewards)
    centred = [r - mean for r in rewards]
    if not normalize_std:
        return centred
    std = statistics.pstdev(rewards) if len(rewards) > 1 else 0.0
    return [c / (std + eps) for c in centred]


def rloo_advantages(rewards: list[float]) -> list[float]:
    """r_i - mean of the other N-1 rewards (leave-one-out baseline)."""
    n = len(rewards)
    if n < 2:
        raise ValueError("RLOO needs at least 2 samples per question")
    total = sum(rewards)
    return [r - (total - r) / (n - 1) for r in rewards]


def gae(rewards: list[float], values: list[float], gamma: float = 1.0, lam: float = 1.0) -> tuple[list[float], list[float]]:
    """Generalised advantage estimation over one response.

    `rewards[t]` and `values[t]` belong to token t (values[t] = V(state before token t)); the value
    after the last token is 0 (terminal). Returns (advantages, returns) with returns = adv + values.
    """
    adv = [0.0] * len(rewards)
    last = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(values) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv, [a + v for a, v in zip(adv, values)]
