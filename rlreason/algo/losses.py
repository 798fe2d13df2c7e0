"""The one policy loss every algorithm shares, the k3 KL term and PPO's clipped value loss.

All losses are token-level: summed over valid tokens and divided by `n_tokens`, the number of valid
tokens in the whole minibatch, so gradient accumulation over micro-batches gives the same gradient as
one big batch (a per-micro-batch mean would weight short micro-batches more).
"""

from __future__ import annotations

import torch


def clipped_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip_eps: float,
    n_tokens: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate: -min(r A, clip(r, 1-eps, 1+eps) A), token-level mean."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv
    loss = -(torch.minimum(unclipped, clipped) * mask).sum() / n_tokens
    with torch.no_grad():
        clip_frac = (((ratio - 1).abs() > clip_eps).float() * mask).sum() / mask.sum().clamp(min=1)
        approx_kl = ((old_logp - logp) * mask).sum() / mask.sum().clamp(min=1)
    return loss, {"clip_frac": clip_frac.item(), "approx_kl_old": approx_kl.item()}


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per token: exp(ref - logp) - (ref - logp) - 1 >= 0."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
    clip: float, n_tokens: float,
) -> torch.Tensor:
    """0.5 * max((V - R)^2, (clip(V, V_old +- c) - R)^2), token-level mean."""
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    loss = torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)
    return 0.5 * (loss * mask).sum() / n_tokens

