"""The one policy loss every algorithm shares, the k3 KL term and PPO's clipped value loss.

All losses are sums over valid tokens divided by a whole-minibatch count (`n_tokens`, or `n_seqs` for
the reference's per-sequence KL), so gradient accumulation over micro-batches gives the same gradient
as one big batch (a per-micro-batch mean would weight short micro-batches more).
"""

from __future__ import annotations

import torch


def clipped_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip_eps: float,
    n_tokens: float, weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate: -min(r A, clip(r, 1-eps, 1+eps) A), token-level mean.

    `weights` (detached, per token) scale each token's term: truncated importance sampling's
    min(pi_old / pi_engine, cap). `ratio_sum` (sum of r over valid tokens) feeds the learner's
    minibatch-mean ratio guard."""
    ratio = torch.exp((logp - old_logp) * mask)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv
    per_token = torch.minimum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights
    loss = -(per_token * mask).sum() / n_tokens
    with torch.no_grad():
        clip_frac = (((ratio - 1).abs() > clip_eps).float() * mask).sum() / mask.sum().clamp(min=1)
        approx_kl = ((old_logp - logp) * mask).sum() / mask.sum().clamp(min=1)
        ratio_sum = (ratio * mask).sum()
    return loss, {"clip_frac": clip_frac.item(), "approx_kl_old": approx_kl.item(), "ratio_sum": ratio_sum.item()}


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per token: exp(ref - logp) - (ref - logp) - 1 >= 0."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


# The reference clamps each token's k3 to [0, 10] (configs/trainers/klLoss.jsonnet:
# kl_penalty_loss_clip_min / _max; ppo_trainer.py PPOTrainer._compute_actor_loss).
KL_CLAMP = (0.0, 10.0)
KL_REDUCTIONS = ("sequence_sum", "token_mean")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, reduction: str, n_tokens: float,
               n_seqs: float) -> torch.Tensor:
    """The KL term (before its coefficient beta), from per-token k3 clamped to KL_CLAMP.

    sequence_sum: sum over each response's tokens, mean over the minibatch's sequences, as the
      reference (ppo_trainer.py PPOTrainer._compute_actor_loss: `ref_kl.sum(dim=1).mean()`).
    token_mean: mean over the minibatch's valid tokens; ~1/length as strong for the same beta.
    """
    kl = torch.clamp(k3_kl(logp, ref_logp) * mask, *KL_CLAMP)
    if reduction == "sequence_sum":
        return kl.sum() / n_seqs
    if reduction == "token_mean":
        return kl.sum() / n_tokens
    raise ValueError(f"kl reduction {reduction!r} is not one of {', '.join(KL_REDUCTIONS)}")


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
    clip: float, n_tokens: float,
) -> torch.Tensor:
    """0.5 * max((V - R)^2, (clip(V, V_old +- c) - R)^2), token-level mean."""
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    loss = torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)
    return 0.5 * (loss * mask).sum() / n_tokens

