"""PPO's GAE on a multi-turn episode: the critic's values count at the action tokens only.

Observation tokens are the environment's, not the policy's: the chain of TD errors runs over the
action tokens alone (an observation's tokens are skipped, so the value before a turn is bootstrapped
from the first action token of the next turn), each turn's reward sits on its last action token, and
the observation positions get advantage 0 and return 0 (they are masked out of every loss anyway).
"""

from __future__ import annotations

from rlreason.algo.advantages import gae


def action_gae(ep, values: list[float], gamma: float, lam: float) -> tuple[list[float], list[float]]:
    """(advantages, returns) per response token of a played episode (`ep.env` its Transcript)."""
    mask = ep.action_mask or [1] * len(ep.response_ids)
    index = [i for i, m in enumerate(mask) if m]
    at = {i: k for k, i in enumerate(index)}
    rewards = [0.0] * len(index)
    for (_, end), r in zip(ep.env.spans, ep.env.turn_totals()):
        if end - 1 in at:
            rewards[at[end - 1]] += r
    adv, ret = gae(rewards, [values[i] for i in index], gamma, lam)
    out_adv, out_ret = [0.0] * len(mask), [0.0] * len(mask)
    for k, i in enumerate(index):
        out_adv[i], out_ret[i] = adv[k], ret[k]
    return out_adv, out_ret
