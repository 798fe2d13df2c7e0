"""The torch learner: owns the trainable weights, computes log-probs, applies PPO-style updates.

One update = recompute old log-probs (and reference log-probs, values) with the current weights, then
`epochs` passes over shuffled minibatches, each minibatch accumulated over micro-batches. Log-probs are
computed at the temperature the engine sampled with, so ratios compare like with like.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator

import torch
from transformers import AutoModelForCausalLM, get_scheduler

from rlreason.algo.advantages import gae
from rlreason.algo.losses import clipped_policy_loss, clipped_value_loss, k3_kl
from rlreason.dist import SINGLE, Dist
from rlreason.dist.fsdp import full_weights, gather_lists, micro_batches, norm_value
from rlreason.learner.batch import Batch, pack, unpack
from rlreason.learner.critic import ValueModel
from rlreason.rollout import Episode


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite updates."""


def token_logprobs(model, batch: Batch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(token_{i+1} | prefix) at `temperature` and the per-position entropy, both [B, L-1]."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    logp_all = torch.log_softmax(logits / temperature, dim=-1)
    logp = logp_all.gather(-1, batch.input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


class Learner:
    def __init__(self, model_path: str, cfg, algo_cfg, *, device: str, dtype: torch.dtype, total_updates: int,
                 pad_id: int, temperature: float, seed: int = 0, gradient_checkpointing: bool = False,
                 init_path: str | None = None, dist: Dist = SINGLE, offload_ref: bool = False):
        """`model_path` is the starting model (reference and critic backbone); `init_path`, when
        resuming, holds the policy weights to continue from. `dist`: under torchrun the models are
        sharded with FSDP2 and each rank trains on its share of every minibatch (rlreason/dist/fsdp.py)."""
        self.cfg, self.algo, self.device, self.pad_id, self.temperature = cfg, algo_cfg, device, pad_id, temperature
        self.dist = dist
        self.autocast = dtype != torch.float32 and device != "cpu"
        load_dtype = torch.float32  # master weights in fp32; bf16 only through autocast on GPU
        # Sharded runs load on the CPU: fully_shard moves each rank's shard to its device.
        load_to = "cpu" if dist.active else device
        self.policy = AutoModelForCausalLM.from_pretrained(init_path or model_path, dtype=load_dtype).to(load_to)
        if gradient_checkpointing:
            self.policy.gradient_checkpointing_enable()
        self.ref = None
        if algo_cfg.kl_coef > 0:
            self.ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(load_to).eval()
            self.ref.requires_grad_(False)
        self.critic = ValueModel(model_path).to(load_to) if algo_cfg.name == "ppo" else None
        if dist.active:  # before the optimizers: sharding replaces the parameters
            from rlreason.dist.fsdp import shard_model

            for m in (self.policy, self.critic):
                if m is not None:
                    shard_model(m, dist, device=device, mixed_precision=self.autocast)
            if self.ref is not None:
                shard_model(self.ref, dist, device=device, mixed_precision=self.autocast,
                            offload=offload_ref and device != "cpu")
        params = [{"params": self.policy.parameters(), "lr": cfg.lr}]
        if self.critic is not None:
            params.append({"params": self.critic.parameters(), "lr": algo_cfg.critic_lr or cfg.lr})
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        schedule = {"linear": "linear", "constant": "constant_with_warmup", "cosine": "cosine"}[cfg.schedule]
        self.scheduler = get_scheduler(schedule, self.optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_updates),
                                       num_training_steps=max(total_updates, 1))
        self.rng = random.Random(seed)  # minibatch shuffles; its state is checkpointed
        self.version = 0  # bumped after every applied update; the engine must be synced to it
        self.bad_updates = 0  # consecutive non-finite updates
        self.skipped_updates = 0  # total, for logging

    # ----------------------------------------------------------------- inference helpers
    def _ctx(self):
        return torch.autocast(self.device, dtype=torch.bfloat16) if self.autocast else torch.autocast("cpu", enabled=False)

    def _micro_batches(self, episodes: list[Episode]) -> Iterator[tuple[list[Episode], Batch, bool]]:
        """This rank's micro-batches (all of them in one process) and whether each is real or the
        padding pass a sharded model needs so that every rank runs as many (rlreason/dist/fsdp.py)."""
        for chunk, real in micro_batches(episodes, self.cfg.micro_batch_size, self.dist):
            yield chunk, pack(chunk, self.pad_id).to(self.device), real

    @torch.no_grad()
    def logprobs(self, episodes: list[Episode], model=None) -> list[list[float]]:
        model = model or self.policy
        out = []
        with self._ctx():
            for chunk, batch, real in self._micro_batches(episodes):
                logp, _ = token_logprobs(model, batch, self.temperature)
                out += unpack(logp, chunk) if real else []
        return gather_lists(out, self.dist)

    @torch.no_grad()
    def values(self, episodes: list[Episode]) -> list[list[float]]:
        out = []
        with self._ctx():
            for chunk, batch, real in self._micro_batches(episodes):
                values = self.critic(batch.input_ids, batch.attention_mask)
                out += unpack(values, chunk) if real else []
        return gather_lists(out, self.dist)

    def named_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full policy tensors under their HF names; sharded, each is gathered as it is consumed."""
        yield from full_weights(self.policy)

    # ----------------------------------------------------------------- the update
    def needs_old_logprobs(self, n_episodes: int) -> bool:
        """False when the update is one optimizer step over all episodes: the weights it starts from
        are the ones that sampled, so the step's own forward pass gives the old log-probs (detached),
        and a separate no-grad pass would compute the same numbers again (~1/3 of learner time)."""
        return not (self.cfg.epochs == 1 and self.cfg.minibatch_size >= n_episodes)

    def update(self, episodes: list[Episode]) -> dict[str, float]:
        """Apply `epochs` x (len / minibatch) optimizer steps. Episodes must carry advantages
        (ppo: they are computed here from the critic with GAE)."""
        old_logp = self.logprobs(episodes) if self.needs_old_logprobs(len(episodes)) else None
        ref_logp = self.logprobs(episodes, self.ref) if self.ref is not None else None
        old_values = self.values(episodes) if self.critic is not None else None
        if old_values is not None:
            for ep, v in zip(episodes, old_values):
                rewards = [0.0] * len(ep.response_ids)
                if rewards:
                    rewards[-1] = ep.reward
                ep.advantages, ep.returns = gae(rewards, v, self.algo.gamma, self.algo.lam)
        metrics: dict[str, list[float]] = defaultdict(list)
        if old_logp is not None:
            metrics["logprob_mismatch"].append(_mismatch(episodes, old_logp))

        order = list(range(len(episodes)))
        mb = self.cfg.minibatch_size
        for _ in range(self.cfg.epochs):
            self.rng.shuffle(order)
            for start in range(0, len(order), mb):
                idx = order[start : start + mb]
                for k, v in self._step(episodes, idx, old_logp, ref_logp, old_values).items():
                    metrics[k].append(v)
        return {k: sum(v) / len(v) for k, v in metrics.items() if v}

    def _step(self, episodes, idx, old_logp, ref_logp, old_values) -> dict[str, float]:
        eps = [episodes[i] for i in idx]
        n_tokens = float(sum(len(ep.response_ids) for ep in eps)) or 1.0
        if self.algo.whiten_advantages:
            # Whiten over the whole minibatch, not per micro-batch.
            flat = torch.tensor([a for ep in eps for a in ep.advantages])
            mean, std = flat.mean().item(), flat.std().item() if flat.numel() > 1 else 1.0
        stats: dict[str, float] = defaultdict(float)
        self.optimizer.zero_grad(set_to_none=True)
        # This rank's share of the minibatch; n_tokens above counts the whole minibatch, so the summed
        # gradient over ranks is the one-process gradient. Padding passes count for nothing.
        for sub, real in micro_batches(idx, self.cfg.micro_batch_size, self.dist):
            chunk, before = [episodes[i] for i in sub], dict(stats)
            batch = pack(chunk, self.pad_id).to(self.device)
            adv = batch.advantages
            if self.algo.whiten_advantages:
                adv = (adv - mean) / (std + 1e-8) * batch.response_mask
            with self._ctx():
                logp, entropy = token_logprobs(self.policy, batch, self.temperature)
                mask = batch.response_mask
                if old_logp is None:
                    old = logp.detach()
                    sampled = _aligned([ep.logprobs for ep in chunk], chunk, batch).to(self.device)
                    stats["logprob_mismatch"] += ((old - sampled).abs() * mask).sum().item() / n_tokens
                else:
                    old = _aligned([old_logp[i] for i in sub], chunk, batch).to(self.device)
                loss, info = clipped_policy_loss(logp, old, adv, mask, self.algo.clip_eps, n_tokens)
                stats["pg_loss"] += loss.item()
                if ref_logp is not None:
                    ref = _aligned([ref_logp[i] for i in sub], chunk, batch).to(self.device)
                    kl = (k3_kl(logp, ref) * mask).sum() / n_tokens
                    loss = loss + self.algo.kl_coef * kl
                    stats["kl_ref"] += kl.item()
                if self.algo.entropy_coef:
                    loss = loss - self.algo.entropy_coef * (entropy * mask).sum() / n_tokens
                if self.critic is not None:
                    values = self.critic(batch.input_ids, batch.attention_mask)
                    old_v = _aligned([old_values[i] for i in sub], chunk, batch).to(self.device)
                    vloss = clipped_value_loss(values, old_v, batch.returns, mask, self.algo.value_clip, n_tokens)
                    loss = loss + self.algo.vf_coef * vloss
                    stats["value_loss"] += vloss.item()
            w = mask.sum().item() / n_tokens
            stats["entropy"] += ((entropy.detach() * mask).sum() / mask.sum().clamp(min=1)).item() * w
            stats["clip_frac"] += info["clip_frac"] * w
            if not real:  # a padding pass: it runs for FSDP's collectives and counts for nothing
                loss, stats = loss * 0.0, defaultdict(float, before)
            loss.backward()
        stats = self._reduce(stats)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = norm_value(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        if not (math.isfinite(grad_norm) and math.isfinite(stats["pg_loss"])):
            # Skip, count, and stop the run if it keeps happening: a NaN step would poison the weights.
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_updates += 1
            self.skipped_updates += 1
            if self.bad_updates >= self.cfg.max_bad_updates:
                raise TrainingDiverged(f"{self.bad_updates} consecutive updates had a non-finite loss or gradient")
            return {"skipped_update": 1.0}
        self.optimizer.step()
        self.scheduler.step()
        self.bad_updates = 0
        self.version += 1
        return {**stats, "grad_norm": grad_norm, "lr": self.scheduler.get_last_lr()[0], "skipped_update": 0.0}

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
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "version": self.version, "skipped_updates": self.skipped_updates,
                "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict, optimizers: bool = True) -> None:
        """`optimizers=False`: a sharded run's optimizer state comes from its DCP files instead."""
        if optimizers:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.version, self.skipped_updates = state["version"], state["skipped_updates"]
        self.rng.setstate(state["rng"])


def _aligned(per_episode: list[list[float]], chunk: list[Episode], batch: Batch) -> torch.Tensor:
    """Scatter per-episode response values into the batch's [B, L-1] layout."""
    out = torch.zeros_like(batch.response_mask, device="cpu")
    for i, (vals, ep) in enumerate(zip(per_episode, chunk)):
        p = len(ep.prompt_ids)
        out[i, p - 1 : p - 1 + len(vals)] = torch.tensor(vals)
    return out


def _mismatch(episodes: list[Episode], learner_logp: list[list[float]]) -> float:
    """Mean |engine log-prob - learner log-prob| over sampled tokens: a broken weight sync shows here."""
    diffs = [abs(a - b) for ep, lp in zip(episodes, learner_logp) for a, b in zip(ep.logprobs, lp)]
    return sum(diffs) / max(len(diffs), 1)
