"""The one policy loss every algorithm shares (with its variants: clip-higher, the loss aggregation,
GSPO's sequence ratio; docs/losses.md), the k3 KL term and PPO's clipped value loss.

All losses are sums over valid tokens divided by whole-minibatch counts (`n_tokens`, `n_seqs`), so
gradient accumulation over micro-batches gives the same gradient as one big batch (a per-micro-batch
mean would weight short micro-batches more).
"""

from __future__ import annotations

import torch


def agg_loss(per_token: torch.Tensor, mask: torch.Tensor, mode: str, n_tokens: float, n_seqs: float | None = None,
             max_tokens: float | None = None) -> torch.Tensor:
    """A micro-batch's share of the minibatch's aggregate of `per_token` (algo.loss_agg; verl's names,
    verl/trainer/ppo/core_algos.py `agg_loss`). Every count is the whole minibatch's, so the micro-batches'
    shares sum to the one-batch value. Each row of a micro-batch is one whole response.

    token-mean: sum over valid tokens / n_tokens (DAPO's token-level loss, §3.3; rlreason's only one before).
    seq-mean-token-mean: mean over the n_seqs responses of each one's token mean (GRPO's 1/G sum 1/|o_i|).
    seq-mean-token-sum-norm: mean over the responses of each one's token sum / max_tokens, a constant
      (Dr.GRPO, arXiv 2503.20783: the generation budget, as its code, oat's
      masked_sum(..., constant_normalizer=generate_max_length).mean()). verl's divides the sum over a
      micro-batch's responses by the padded length without the mean over responses: the same direction,
      scaled by the micro-batch size, which matters only against learner.grad_clip.
    """
    total = per_token * mask
    if mode == "token-mean":
        return total.sum() / n_tokens
    if n_seqs is None:
        raise ValueError(f"loss_agg={mode} needs the minibatch's number of responses (n_seqs)")
    if mode == "seq-mean-token-mean":
        return (total.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / n_seqs
    if mode == "seq-mean-token-sum-norm":
        if not max_tokens:
            raise ValueError("loss_agg=seq-mean-token-sum-norm needs the constant normaliser max_tokens "
                             "(rollout.max_new_tokens)")
        return total.sum() / (max_tokens * n_seqs)
    raise ValueError(f"loss_agg {mode!r} is not one of token-mean, seq-mean-token-mean, seq-mean-token-sum-norm")


# GSPO's log-ratio cap, as verl's compute_policy_loss_gspo (`torch.clamp(log_seq_importance_ratio, max=10.0)`).
GSPO_LOG_RATIO_MAX = 10.0


def clipped_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip_eps: float,
    n_tokens: float, weights: torch.Tensor | None = None, *, clip_eps_high: float | None = None,
    ratio_level: str = "token", loss_agg: str = "token-mean", n_seqs: float | None = None,
    max_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate -min(r A, clip(r, 1 - eps, 1 + eps_high) A), aggregated by `loss_agg`.

    clip_eps_high: DAPO's clip-higher (Yu et al. 2025, arXiv 2503.14476 §3.1; verl's clip_ratio_high in
      compute_policy_loss_vanilla): a wider upper clip lets low-probability tokens grow; None = clip_eps.
    ratio_level="sequence": GSPO (Zheng et al. 2025, arXiv 2507.18071), the length-normalised sequence ratio
      s_i = exp(mean over the response's tokens of log(pi / pi_old)), applied per token in the paper's
      GSPO-token form s_i,t = sg[s_i] * pi_t / sg[pi_t] (verl compute_policy_loss_gspo): every token's
      value is s_i, and with seq-mean-token-mean the gradient is the paper's s_i A_i grad log s_i.
    `weights` (detached, per token) scale each token's term: truncated importance sampling's
    min(pi_old / pi_engine, cap). `ratio_sum` (sum of r over valid tokens) feeds the learner's
    minibatch-mean ratio guard."""
    high = clip_eps if clip_eps_high is None else clip_eps_high
    if ratio_level == "sequence":
        seq = ((logp - old_logp) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
        log_ratio = torch.clamp(logp - logp.detach() + seq.detach(), max=GSPO_LOG_RATIO_MAX) * mask
    elif ratio_level == "token":
        log_ratio = (logp - old_logp) * mask
    else:
        raise ValueError(f"ratio_level {ratio_level!r} is not one of token, sequence")
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + high) * adv
    per_token = torch.minimum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights
    loss = -agg_loss(per_token, mask, loss_agg, n_tokens, n_seqs, max_tokens)
    with torch.no_grad():
        outside = (ratio > 1 + high) | (ratio < 1 - clip_eps)
        clip_frac = (outside.float() * mask).sum() / mask.sum().clamp(min=1)
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

