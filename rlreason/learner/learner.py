"""The torch learner: owns the trainable weights, computes log-probs, applies PPO-style updates.

One update = recompute old log-probs (and reference log-probs, values) with the current weights, then
`epochs` passes over shuffled minibatches, each minibatch accumulated over micro-batches. Log-probs are
computed at the temperature the engine sampled with, so ratios compare like with like.

As the reference (McGill-NLP/VinePPO src/treetune/trainers/ppo_trainer.py, PPOTrainer._training_step):
the policy and the PPO critic are separate models with their own optimizer, LR schedule and gradient
clip (one DeepSpeed engine each there); a minibatch whose mean ratio exceeds `algo.ratio_threshold`
does not update the policy. Modules are in train mode for the update (gradient checkpointing only
engages in train mode) and in eval mode for the no-grad passes.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

import torch
from transformers import AutoModelForCausalLM

from rlreason.algo.advantages import gae
from rlreason.algo.losses import clipped_policy_loss, clipped_value_loss, kl_penalty
from rlreason.distributed import SINGLE, Dist
from rlreason.distributed.fsdp import FullWeights, gather_lists, micro_batches, norm_value, reshard
from rlreason.envs.gae import action_gae
from rlreason.learner import lora, packing
from rlreason.learner.batch import Batch, pack, unpack
from rlreason.learner.critic import ValueModel
from rlreason.learner.objective import clip_eps_high, loss_agg
from rlreason.learner.schedule import make_scheduler
from rlreason.rollout import Episode


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite updates."""


def token_logprobs(model, batch: Batch, temperature: float, *, entropy_grad: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(token_{i+1} | prefix) at `temperature` and the per-position entropy, both [B, L-1].

    The entropy carries a graph only with `entropy_grad` (a loss term, algo.entropy_coef > 0): its
    graph holds two more logits-sized fp32 tensors (the softmax and the product), which a logged-only
    entropy would keep alive until the micro-batch's backward, and past it into the next one.
    A packed batch (rlreason/learner/packing.py) computes the response positions' logits alone, in one
    padding-free row, and returns them in the same [B, L-1] layout (zeros elsewhere)."""
    if (p := batch.packed) is not None:
        logits = model(**p.kwargs(), logits_to_keep=p.keep, use_cache=False).logits[0].float()
        targets = p.targets
    else:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits[:, :-1].float()
        targets = batch.input_ids[:, 1:]
    logp_all = torch.log_softmax(logits / temperature, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    if p is not None:
        return p.padded(logp, batch.response_mask), p.padded(entropy, batch.response_mask)
    return logp, entropy


def token_values(critic, batch: Batch) -> torch.Tensor:
    """The PPO critic's values [B, L-1] (packed: at the response positions, zeros elsewhere)."""
    if (p := batch.packed) is None:
        return critic(batch.input_ids, batch.attention_mask)
    return p.padded(critic(**p.kwargs(), keep=p.keep)[0], batch.response_mask)


class Learner:
    def __init__(self, model_path: str, cfg, algo_cfg, *, device: str, dtype: torch.dtype, total_updates: int,
                 pad_id: int, temperature: float, seed: int = 0, gradient_checkpointing: bool = False,
                 init_path: str | None = None, dist: Dist = SINGLE, offload_ref: bool = False,
                 max_new_tokens: int | None = None):
        """`model_path` is the starting model (reference and critic backbone); `init_path`, when
        resuming, holds the policy weights to continue from. `dist`: under torchrun the models are
        sharded with FSDP2 and each rank trains on its share of every minibatch (rlreason/distributed/fsdp.py).
        `max_new_tokens` (rollout.max_new_tokens): algo.loss_agg=seq-mean-token-sum-norm's constant normaliser."""
        self.cfg, self.algo, self.device, self.pad_id, self.temperature = cfg, algo_cfg, device, pad_id, temperature
        self.loss_agg, self.clip_eps_high = loss_agg(algo_cfg), clip_eps_high(algo_cfg)
        if self.loss_agg == "seq-mean-token-sum-norm" and not max_new_tokens:
            raise ValueError("algo.loss_agg=seq-mean-token-sum-norm divides by rollout.max_new_tokens: pass max_new_tokens")
        self.max_new_tokens = max_new_tokens
        # Token-budget micro-batches, packed without padding (rlreason/learner/packing.py); None: by count
        self.token_budget = getattr(cfg, "max_tokens_per_micro_batch", None)
        attention = packing.attention(device, dtype != torch.float32 and device != "cpu") if self.token_budget else None
        self.dtype = dtype  # the reference's and the engine's: weight syncs are gathered in it
        self.dist = dist
        self.autocast = dtype != torch.float32 and device != "cpu"

        def place(model, offload: bool = False):
            """Move to the device or, under torchrun, shard (fully_shard moves each shard there). Each model
            is sharded as soon as it is loaded, before the optimizers (sharding replaces the parameters), so
            a rank holds one full model on the CPU at a time, not all of them."""
            if not dist.active:
                return model.to(device)
            from rlreason.distributed.fsdp import shard_model

            return shard_model(model, dist, device=device, mixed_precision=self.autocast,
                               offload=offload and device != "cpu")

        # Master weights in fp32; bf16 only through autocast on GPU.
        self.lora = lora.enabled(cfg)  # adapters on a frozen base (rlreason/learner/lora.py); init_path: the adapter's
        self.policy = AutoModelForCausalLM.from_pretrained(model_path if self.lora else init_path or model_path,
                                                           dtype=torch.float32, attn_implementation=attention)
        if gradient_checkpointing:
            self.policy.gradient_checkpointing_enable()
        if self.lora:
            self.policy = lora.wrap(self.policy, cfg.lora, init_path if init_path != model_path else None, seed)
        self.policy = place(self.policy)
        self.ref = None
        if algo_cfg.kl_coef > 0 and self.lora:
            self.ref = lora.AdaptersOff(self.policy)  # the base itself: no second copy of the weights
        elif algo_cfg.kl_coef > 0:
            self.ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype,
                                                            attn_implementation=attention).eval()
            self.ref.requires_grad_(False)
            self.ref = place(self.ref, offload=offload_ref)
        self.critic = None
        if algo_cfg.name == "ppo":
            self.critic = ValueModel(model_path, seed=seed, attn_implementation=attention)
            if gradient_checkpointing:  # the reference checkpoints the critic too (PPOTrainer._init_critic_model)
                self.critic.backbone.gradient_checkpointing_enable()
            self.critic = place(self.critic)
        self._train_mode(False)
        self.optimizer, self.scheduler = self._optimizer(self.policy, cfg.lr, total_updates)
        self.critic_optimizer = self.critic_scheduler = None
        if self.critic is not None:
            self.critic_optimizer, self.critic_scheduler = self._optimizer(
                self.critic, algo_cfg.critic_lr or cfg.lr, total_updates)
        self.rng = random.Random(seed)  # minibatch shuffles; its state is checkpointed
        self.version = 0  # bumped after every applied update; the engine must be synced to it
        self.bad_updates = 0  # consecutive non-finite updates
        self.skipped_updates = 0  # total, for logging
        self.ratio_skips = 0  # policy steps skipped by the ratio guard, total

    def _optimizer(self, model: torch.nn.Module, lr: float, total_updates: int):
        cfg = self.cfg
        opt = torch.optim.AdamW(lora.trainable(model), lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        return opt, make_scheduler(opt, cfg, total_updates)

    def _train_mode(self, on: bool) -> None:
        """Train mode for the update, eval mode for no-grad passes (the reference model stays in eval)."""
        for m in (self.policy, self.critic):
            if m is not None:
                m.train(on)

    # ----------------------------------------------------------------- inference helpers
    def _ctx(self):
        return torch.autocast(self.device, dtype=torch.bfloat16) if self.autocast else torch.autocast("cpu", enabled=False)

    def _chunks(self, idx: list[int], episodes: list[Episode]) -> list[tuple[list[int], bool]]:
        """This rank's micro-batches of `idx` (all of them in one process), by count or by token budget, and
        whether each is real or the padding pass a sharded model needs so that every rank runs as many
        (rlreason/distributed/fsdp.py)."""
        if self.token_budget is None:
            return micro_batches(idx, self.cfg.micro_batch_size, self.dist)
        return packing.micro_batches(idx, packing.tokens([episodes[i] for i in idx]), self.token_budget, self.dist)

    def _batch(self, chunk: list[Episode]) -> Batch:
        return pack(chunk, self.pad_id, packed=self.token_budget is not None).to(self.device)

    def _per_episode(self, episodes: list[Episode], fn) -> list[list[float]]:
        """fn(batch) -> [B, L-1] over this rank's micro-batches, as per-episode response lists in the
        episodes' order (token-budget micro-batches regroup them), gathered over ranks."""
        out: dict[int, list[float]] = {}
        with self._ctx():
            for sub, real in self._chunks(list(range(len(episodes))), episodes):
                chunk = [episodes[i] for i in sub]
                if real:
                    out.update(zip(sub, unpack(fn(self._batch(chunk)), chunk)))
                else:
                    fn(self._batch(chunk))
        return gather_lists([out[i] for i in sorted(out)], self.dist)

    @torch.no_grad()
    def logprobs(self, episodes: list[Episode], model=None) -> list[list[float]]:
        model = model or self.policy
        self._train_mode(False)
        out = self._per_episode(episodes, lambda batch: token_logprobs(model, batch, self.temperature)[0])
        reshard(model)  # no backward follows that would free the root's gathered parameters
        return out

    @torch.no_grad()
    def values(self, episodes: list[Episode]) -> list[list[float]]:
        self._train_mode(False)
        out = self._per_episode(episodes, lambda batch: token_values(self.critic, batch))
        reshard(self.critic)
        return out

    def named_weights(self) -> FullWeights:
        """Full policy tensors under their HF names; sharded, each is gathered as it is consumed, in the
        engine's dtype. Its `specs()` announce them without a gather. LoRA: base + adapter, merged per layer
        (learner.lora.sync=adapter: the adapter itself for an engine that serves it, rlreason/learner/lora.py)."""
        if not self.lora:
            return FullWeights(self.policy, self.dtype)
        return (lora.AdapterWeights if self.cfg.lora.sync == "adapter" else lora.MergedWeights)(self.policy, self.dtype)

    # ----------------------------------------------------------------- the update
    def needs_old_logprobs(self, n_episodes: int) -> bool:
        """False when the update is one optimizer step over all episodes: the weights it starts from
        are the ones that sampled, so the step's own forward pass gives the old log-probs (detached),
        and a separate no-grad pass would compute the same numbers again (~1/3 of learner time)."""
        return not (self.cfg.epochs == 1 and self.cfg.minibatch_size >= n_episodes)

    def update(self, episodes: list[Episode], extra: list[Episode] = ()) -> dict[str, float]:
        """Apply `epochs` x (len / minibatch) optimizer steps. Episodes must carry advantages
        (ppo: they are computed here from the critic with GAE). `extra` (VinePPO's continuations,
        algo.mc.tree) are spread evenly over the same minibatches: they add tokens to each step, not
        steps, so the number of optimizer steps and the LR schedule stay what the config says."""
        n_traj = len(episodes)
        episodes = list(episodes) + list(extra)
        old_logp = self.logprobs(episodes) if self.needs_old_logprobs(n_traj) else None
        ref_logp = self.logprobs(episodes, self.ref) if self.ref is not None else None
        old_values = self.values(episodes) if self.critic is not None else None
        if old_values is not None:
            for ep, v in zip(episodes, old_values):
                if ep.env is not None:  # turns: GAE over the action tokens, each turn's reward at its end
                    ep.advantages, ep.returns = action_gae(ep, v, self.algo.gamma, self.algo.lam)
                    continue
                rewards = [0.0] * len(ep.response_ids)
                if rewards:
                    rewards[-1] = ep.reward
                ep.advantages, ep.returns = gae(rewards, v, self.algo.gamma, self.algo.lam)
        metrics: dict[str, list[float]] = defaultdict(list)
        order, order_extra = list(range(n_traj)), list(range(n_traj, len(episodes)))
        mb = self.cfg.minibatch_size
        steps = -(-n_traj // mb)
        try:
            self._train_mode(True)
            for epoch in range(self.cfg.epochs):
                self.rng.shuffle(order)
                if order_extra:
                    self.rng.shuffle(order_extra)
                for step in range(steps):
                    idx = order[step * mb : (step + 1) * mb] + order_extra[step::steps]
                    for k, v in self._step(episodes, idx, old_logp, ref_logp, old_values, epoch == 0).items():
                        metrics[k].append(v)
        finally:
            self._train_mode(False)
            # Gradients are not needed until the next update: free them for generation (FSDP: a full
            # fp32 gradient shard per parameter shard).
            for opt in (self.optimizer, self.critic_optimizer):
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
        return {k: (max(v) if k.endswith("_max") else sum(v) / len(v)) for k, v in metrics.items() if v}

    def _step(self, episodes, idx, old_logp, ref_logp, old_values, first_epoch: bool) -> dict[str, float]:
        eps = [episodes[i] for i in idx]
        n_tokens = float(sum(ep.action_tokens for ep in eps)) or 1.0
        algo = self.algo
        if algo.whiten_advantages:
            # Over the minibatch's tokens, unbiased variance, as the reference (trainers/utils.py
            # masked_whiten(..., unbiased_variance=True), called per step in PPOTrainer._training_step).
            flat = torch.tensor([a for ep in eps for a, m in zip(ep.advantages, ep.action_mask or [1] * len(ep.advantages))
                                 if m])
            mean = flat.mean().item()
            inv_std = torch.rsqrt(flat.var() + 1e-8).item() if flat.numel() > 1 else 1.0
        stats: dict[str, float] = defaultdict(float)
        self.optimizer.zero_grad(set_to_none=True)
        if self.critic_optimizer is not None:
            self.critic_optimizer.zero_grad(set_to_none=True)
        mismatch_max = 0.0
        # This rank's share of the minibatch; n_tokens above counts the whole minibatch, so the summed
        # gradient over ranks is the one-process gradient. A padding pass (`real` False) runs only for
        # FSDP's collectives: its losses are scaled by 0 and its statistics dropped.
        for sub, real in self._chunks(idx, episodes):
            chunk, before, scale = [episodes[i] for i in sub], dict(stats), 1.0 if real else 0.0
            batch = self._batch(chunk)
            mask = batch.response_mask
            adv = batch.advantages
            if algo.whiten_advantages:
                adv = (adv - mean) * inv_std * mask
            with self._ctx():
                logp, entropy = token_logprobs(self.policy, batch, self.temperature,
                                               entropy_grad=bool(algo.entropy_coef))
                if old_logp is None:  # one step from the sampling weights: its own forward pass is "old"
                    old = logp.detach()
                else:
                    old = _aligned([old_logp[i] for i in sub], chunk, batch).to(self.device)
                # Training-inference mismatch: the learner's old log-probs against the engine's. Truncated
                # importance sampling (Yao et al. 2025, fengyao.notion.site/off-policy-rl; verl
                # docs/advance/rollout_is.md) weights each token by min(pi_old / pi_engine, cap).
                weights = None
                if algo.tis_cap is not None or first_epoch:  # later epochs without TIS need no gap
                    sampled = _aligned([ep.logprobs for ep in chunk], chunk, batch).to(self.device)
                    gap = (old - sampled) * mask
                if algo.tis_cap is not None:
                    is_ratio = torch.exp(gap)
                    weights = torch.clamp(is_ratio, max=algo.tis_cap) * mask
                    stats["tis_capped_frac"] += ((is_ratio > algo.tis_cap).float() * mask).sum().item() / n_tokens
                    stats["tis_weight_mean"] += weights.sum().item() / n_tokens
                if first_epoch:  # the same numbers every epoch; once is enough
                    stats["logprob_mismatch"] += gap.abs().sum().item() / n_tokens
                    mismatch_max = max(mismatch_max, gap.abs().max().item() * scale)
                loss, info = clipped_policy_loss(
                    logp, old, adv, mask, algo.clip_eps, n_tokens, weights, clip_eps_high=self.clip_eps_high,
                    ratio_level=algo.ratio_level, loss_agg=self.loss_agg, n_seqs=float(len(idx)),
                    max_tokens=self.max_new_tokens)
                stats["pg_loss"] += loss.item()
                stats["ratio_mean"] += info["ratio_sum"] / n_tokens
                if ref_logp is not None:
                    ref = _aligned([ref_logp[i] for i in sub], chunk, batch).to(self.device)
                    kl = kl_penalty(logp, ref, mask, algo.kl_reduction, n_tokens, float(len(idx)))
                    loss = loss + algo.kl_coef * kl
                    stats["kl_ref"] += kl.item()
                if algo.entropy_coef:
                    loss = loss - algo.entropy_coef * (entropy * mask).sum() / n_tokens
            w = mask.sum().item() / n_tokens
            stats["entropy"] += ((entropy.detach() * mask).sum() / mask.sum().clamp(min=1)).item() * w
            stats["clip_frac"] += info["clip_frac"] * w
            (loss * scale).backward()
            if self.critic is not None:
                with self._ctx():
                    values = token_values(self.critic, batch)
                    old_v = _aligned([old_values[i] for i in sub], chunk, batch).to(self.device)
                    vloss = clipped_value_loss(values, old_v, batch.returns, mask, algo.value_clip, n_tokens)
                stats["value_loss"] += vloss.item()
                (algo.vf_coef * vloss * scale).backward()
            if not real:
                stats = defaultdict(float, before)
        if first_epoch:
            stats["logprob_mismatch_max"] = mismatch_max
        stats = self._reduce(stats)  # global sums (and maxima) before any decision below
        # The reference zeroes the loss of a minibatch whose mean ratio is above the threshold
        # (PPOTrainer._compute_actor_loss, ratio_threshold = 10) and still lets Adam step on the zero
        # gradient; here the policy does not step at all (no momentum-only move). The critic still does.
        ratio_skip = algo.ratio_threshold is not None and stats["ratio_mean"] > algo.ratio_threshold
        grad_norm = norm_value(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip))
        critic_norm = 0.0
        if self.critic is not None:
            critic_norm = norm_value(torch.nn.utils.clip_grad_norm_(self.critic.parameters(), self.cfg.grad_clip))
        finite = all(math.isfinite(x) for x in (grad_norm, critic_norm, stats["pg_loss"], stats["value_loss"]))
        if not finite:
            # Skip, count, and stop the run if it keeps happening: a NaN step would poison the weights.
            self.optimizer.zero_grad(set_to_none=True)
            if self.critic_optimizer is not None:
                self.critic_optimizer.zero_grad(set_to_none=True)
            self.bad_updates += 1
            self.skipped_updates += 1
            if self.bad_updates >= self.cfg.max_bad_updates:
                raise TrainingDiverged(f"{self.bad_updates} consecutive updates had a non-finite loss or gradient")
            return {"skipped_update": 1.0}
        if ratio_skip:
            self.ratio_skips += 1
        else:
            self.optimizer.step()
            self.version += 1
        self.scheduler.step()  # the schedule counts minibatches, as the reference's (it steps regardless)
        if self.critic_optimizer is not None:
            self.critic_optimizer.step()
            self.critic_scheduler.step()
            stats["critic_grad_norm"] = critic_norm
        self.bad_updates = 0
        return {**stats, "grad_norm": grad_norm, "lr": self.scheduler.get_last_lr()[0], "skipped_update": 0.0,
                "ratio_skipped": float(ratio_skip)}

    def _reduce(self, stats: dict[str, float]) -> dict[str, float]:
        """Sum each statistic over ranks (each is a share of a global mean); `*_max` take the max."""
        if not self.dist.active:
            return stats
        parts = self.dist.all_gather(dict(stats))  # a rank with only padding passes has no keys
        keys = sorted({k for p in parts for k in p})
        return defaultdict(float, {k: (max if k.endswith("_max") else sum)(p.get(k, 0.0) for p in parts)
                                   for k in keys})

    # ----------------------------------------------------------------- checkpoint state
    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "version": self.version, "skipped_updates": self.skipped_updates, "ratio_skips": self.ratio_skips,
                 "rng": self.rng.getstate()}
        if self.critic_optimizer is not None:
            state |= {"critic_optimizer": self.critic_optimizer.state_dict(),
                      "critic_scheduler": self.critic_scheduler.state_dict()}
        return state

    def load_state_dict(self, state: dict, optimizers: bool = True) -> None:
        """`optimizers=False`: a sharded run's optimizer state comes from its DCP files instead."""
        if optimizers:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.critic_optimizer is not None:
            if optimizers:
                self.critic_optimizer.load_state_dict(state["critic_optimizer"])
            self.critic_scheduler.load_state_dict(state["critic_scheduler"])
        self.version, self.skipped_updates = state["version"], state["skipped_updates"]
        self.ratio_skips = state.get("ratio_skips", 0)
        self.rng.setstate(state["rng"])


def _aligned(per_episode: list[list[float]], chunk: list[Episode], batch: Batch) -> torch.Tensor:
    """Scatter per-episode response values into the batch's [B, L-1] layout."""
    out = torch.zeros_like(batch.response_mask, device="cpu")
    for i, (vals, ep) in enumerate(zip(per_episode, chunk)):
        p = len(ep.prompt_ids)
        out[i, p - 1 : p - 1 + len(vals)] = torch.tensor(vals)
    return out
