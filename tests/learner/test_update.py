"""The update's reference details (issue 10.2-10.5): advantage whitening, the PPO critic with its own
optimizer and clip and the reference's value-head init, train mode (so gradient checkpointing engages),
the ratio guard, and truncated importance sampling against the real engine's log-probs."""

from __future__ import annotations

import math

import pytest
import torch

from rlreason.config import AlgoConfig, LearnerConfig
from rlreason.engine.base import SamplingParams
from rlreason.learner.learner import Learner
from rlreason.rollout import Episode
from tests.learner.test_faults import episodes, same, weights
from tests.trainer import conftest as trainer_conftest

make_cfg = trainer_conftest.make_cfg  # the fixture composing the real config tree (tests/trainer)


def learner(model_dir: str, pad_id: int, algo: str = "grpo", learner_kw=None, **algo_kw) -> Learner:
    kw = {"lr": 1e-3, "warmup_ratio": 0.0, "schedule": "constant", "epochs": 1, "minibatch_size": 8,
          "micro_batch_size": 4, **(learner_kw or {})}
    cfg = LearnerConfig(**kw)
    return Learner(model_dir, cfg, AlgoConfig(name=algo, **{"kl_coef": 0.0, **algo_kw}), device="cpu",
                   dtype=torch.float32, total_updates=100, pad_id=pad_id, temperature=1.0)


@pytest.mark.parametrize("algo,whiten,kl", [("vineppo", True, "sequence_sum"), ("ppo", True, "sequence_sum"),
                                            ("grpo", False, "token_mean"), ("rloo", False, "token_mean")])
def test_reference_defaults_per_algo(make_cfg, algo, whiten, kl):
    cfg = make_cfg(f"algo={algo}")
    assert (cfg.algo.whiten_advantages, cfg.algo.kl_reduction) == (whiten, kl)
    assert cfg.algo.ratio_threshold == 10.0 and cfg.algo.tis_cap is None
    paper = make_cfg(f"algo={algo}", "experiment=paper", "data=math")
    assert paper.algo.whiten_advantages and paper.algo.kl_reduction == "sequence_sum"


def test_whitened_update_ignores_a_shift_of_all_advantages(tiny_model_dir, tiny_tokenizer):
    """Whitening subtracts the minibatch mean: A and A + 5 give the same step; unwhitened they do not."""
    pad = tiny_tokenizer.pad_token_id
    shifted = episodes(8)
    for ep in shifted:
        ep.advantages = [a + 5.0 for a in ep.advantages]
    for whiten in (True, False):
        a, b = learner(tiny_model_dir, pad, whiten_advantages=whiten), learner(tiny_model_dir, pad,
                                                                              whiten_advantages=whiten)
        a.update(episodes(8))
        b.update(shifted)
        close = all(torch.allclose(x, y, atol=1e-6, rtol=0) for x, y in zip(weights(a).values(), weights(b).values()))
        assert close == whiten


def test_critic_has_its_own_optimizer_and_clip_and_the_reference_head_init(tiny_model_dir, tiny_tokenizer):
    pad = tiny_tokenizer.pad_token_id
    a = learner(tiny_model_dir, pad, "ppo")
    head = a.critic.head
    hidden = head.weight.shape[1]
    assert head.bias.abs().max().item() == 0.0
    assert abs(head.weight.std().item() * math.sqrt(hidden + 1) - 1) < 0.25  # N(0, 1/(hidden+1))
    assert torch.equal(head.weight, learner(tiny_model_dir, pad, "ppo").critic.head.weight)  # seeded
    assert {id(p) for g in a.optimizer.param_groups for p in g["params"]}.isdisjoint(
        id(p) for g in a.critic_optimizer.param_groups for p in g["params"])
    # A critic loss a million times larger must not shrink the policy's step: under a joint clip it would.
    b = learner(tiny_model_dir, pad, "ppo", vf_coef=1e6)
    ma, mb = a.update(episodes(8)), b.update(episodes(8))
    assert mb["critic_grad_norm"] > 1e3 * ma["critic_grad_norm"] and ma["grad_norm"] > 0
    assert same(weights(a), weights(b))
    fresh = learner(tiny_model_dir, pad, "ppo")
    fresh.load_state_dict(a.state_dict())
    assert fresh.critic_scheduler.last_epoch == a.critic_scheduler.last_epoch == 1


@pytest.mark.parametrize("checkpointing", [True, False])
def test_gradient_checkpointing_really_recomputes_in_the_update(tiny_model_dir, tiny_tokenizer, checkpointing):
    """The policy loads in eval mode and transformers checkpoints only in train mode: count the forward
    passes of a decoder layer in one update (2 per micro-batch = forward + recompute in backward). A pre-hook:
    torch's non-reentrant checkpoint stops the recompute early, before a forward hook would fire."""
    a = learner(tiny_model_dir, tiny_tokenizer.pad_token_id, learner_kw={"minibatch_size": 8})
    if checkpointing:
        a.policy.gradient_checkpointing_enable()
    calls = []
    layer = a.policy.model.layers[0]
    hook = layer.register_forward_pre_hook(lambda m, i: calls.append((m.training, torch.is_grad_enabled())))
    try:
        assert not a.needs_old_logprobs(8)  # one step: no separate no-grad pass
        a.update(episodes(8))
    finally:
        hook.remove()
    micro_batches = 8 // a.cfg.micro_batch_size
    assert len(calls) == micro_batches * (2 if checkpointing else 1)
    assert all(training and grad for training, grad in calls)
    assert not a.policy.training  # back in eval mode for the no-grad passes
    a.logprobs(episodes(2))
    assert not a.policy.training


def test_a_minibatch_with_a_runaway_ratio_does_not_move_the_policy(tiny_model_dir, tiny_tokenizer, monkeypatch):
    a = learner(tiny_model_dir, tiny_tokenizer.pad_token_id, learner_kw={"minibatch_size": 4})
    eps = episodes(8)
    real = a.logprobs
    # old log-probs 5 nats below the policy's: mean ratio e^5 ~ 148 > 10 in every minibatch
    monkeypatch.setattr(a, "logprobs", lambda e, model=None: [[x - 5.0 for x in lp] for lp in real(e, model)])
    before = weights(a)
    m = a.update(eps)
    assert m["ratio_skipped"] == 1.0 and a.ratio_skips == 2 and m["ratio_mean"] > 100
    assert same(before, weights(a)) and a.version == 0
    a.algo.ratio_threshold = None
    assert a.update(eps)["ratio_skipped"] == 0.0 and not same(before, weights(a)) and a.version == 2


@pytest.mark.vllm
def test_tis_weights_and_mismatch_statistics_on_the_real_engine(vllm_engine, initial_weights, tiny_model_dir,
                                                                tiny_tokenizer):
    """With top_p = 0.9 the engine's log-probs are of the truncated distribution; the learner's are not."""
    vllm_engine.sync_weights(initial_weights.items(), 0)
    prompts = [tiny_tokenizer(t)["input_ids"] for t in ("1+2*3=", "4-5*6+7=")]

    def rollout(top_p: float) -> list[Episode]:
        outs = vllm_engine.generate(prompts, SamplingParams(n=4, temperature=1.0, top_p=top_p, max_tokens=16, seed=5))
        eps = episodes(8)
        for ep, (p, c) in zip(eps, [(p, c) for p, cs in zip(prompts, outs) for c in cs]):
            ep.prompt_ids, ep.response_ids, ep.logprobs = p, list(c.token_ids), list(c.logprobs)
            ep.advantages = [1.0 if ep.reward else -1.0] * len(c.token_ids)
        return eps

    pad = tiny_tokenizer.pad_token_id
    full = learner(tiny_model_dir, pad, tis_cap=2.0).update(rollout(1.0))
    assert full["logprob_mismatch"] < 1e-3 and full["tis_capped_frac"] == 0.0
    assert abs(full["tis_weight_mean"] - 1.0) < 1e-3

    eps = rollout(0.9)
    a = learner(tiny_model_dir, pad, tis_cap=1.0)  # nucleus renormalisation: pi_learner < pi_engine
    old = a.logprobs(eps)
    m = a.update(eps)
    gaps = [o - s for ep, lp in zip(eps, old) for o, s in zip(lp, ep.logprobs)]
    assert m["logprob_mismatch"] > 0.01 and abs(m["logprob_mismatch"] - sum(map(abs, gaps)) / len(gaps)) < 1e-5
    assert abs(m["logprob_mismatch_max"] - max(map(abs, gaps))) < 1e-5
    capped = sum(g > 0 for g in gaps) / len(gaps)
    assert abs(m["tis_capped_frac"] - capped) < 1e-6
    # the step's loss is -(sum of min(pi_old / pi_engine, cap) * A) / n_tokens (ratio 1 in a single step)
    w = [min(math.exp(g), 1.0) for g in gaps]
    advs = [x for ep in eps for x in ep.advantages]
    assert abs(m["pg_loss"] - -sum(wi * ai for wi, ai in zip(w, advs)) / len(advs)) < 1e-5
    off = learner(tiny_model_dir, pad).update(eps)
    assert "tis_weight_mean" not in off and abs(off["pg_loss"] + sum(advs) / len(advs)) < 1e-5


def test_extra_episodes_join_the_trajectories_steps_instead_of_adding_steps(tiny_model_dir, tiny_tokenizer):
    """VinePPO's continuations (algo.mc.tree) ride in the trajectories' minibatches: 16 trajectories in
    minibatches of 8 are 2 optimizer steps with or without 6 extra episodes, and the extras move the weights."""
    pad = tiny_tokenizer.pad_token_id
    plain, with_extra = learner(tiny_model_dir, pad, "vineppo"), learner(tiny_model_dir, pad, "vineppo")
    plain.update(episodes(16))
    with_extra.update(episodes(16), episodes(6))
    assert plain.version == with_extra.version == 2
    assert not all(torch.allclose(x, y) for x, y in zip(weights(plain).values(), weights(with_extra).values()))
