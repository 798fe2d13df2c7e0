"""learner.max_tokens_per_micro_batch (rlreason/learner/packing.py): micro-batches filled by tokens and packed
into one padding-free row give the padded path's log-probs, entropies, values, gradients, losses and
metrics (fp32, 1e-5) for every algorithm, whatever the micro-batch boundaries; each micro-batch holds at most
the budget's tokens and no padding; a budget that cannot hold a response is refused before compute."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlreason.config import AlgoConfig, LearnerConfig, LoraConfig
from rlreason.data.record import Question
from rlreason.distributed import Dist
from rlreason.learner import packing
from rlreason.learner.batch import pack
from rlreason.learner.critic import ValueModel
from rlreason.learner.learner import Learner, token_logprobs, token_values
from rlreason.model.tiny import assets_dir
from rlreason.rollout import Episode
from rlreason.validate import ConfigError
from tests.trainer import conftest as trainer_conftest

make_cfg = trainer_conftest.make_cfg
TOL = 1e-5
CHAT = str(assets_dir("chat"))  # the committed tiny_chat model: a Qwen2 with grouped-query attention


def episodes(n: int = 10, seed: int = 0, vocab: int = 40, long: int = 40) -> list[Episode]:
    """Prompts of 3-11 tokens, responses of 2-`long` (a 10-20x spread), rewards and advantages of both signs."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = torch.randint(3, vocab, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        r = torch.randint(3, vocab, (int(torch.randint(2, long, (1,), generator=g)),), generator=g).tolist()
        adv = torch.randn(len(r), generator=g).tolist()
        out.append(Episode(Question(id=f"q{i}", problem="1+1", answer="2"), p, r, [-1.0] * len(r), "", "stop",
                           reward=float(i % 2), advantages=adv))
    return out


def close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> bool:
    """Equal within `tol`, relative to the tensor's scale where that is above 1 (gradients of a few units)."""
    return (a - b).abs().max().item() <= tol * max(1.0, a.abs().max().item())


# ----------------------------------------------------------------------------- micro-batches by tokens
def test_bins_hold_the_budget_and_every_episode_once_an_over_long_one_alone():
    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(200)] + [300]
    bins = packing.token_bins(lengths, 256)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 256 or len(b) == 1 for b in bins)
    assert [200] in bins  # longer than the budget: its own micro-batch, never split
    # First-fit decreasing: close to the fewest bins the tokens need, not one per few episodes.
    assert len(bins) <= sum(lengths) / 256 * 1.1 + 2
    assert packing.token_bins(lengths, 256) == bins  # a function of the lengths alone


def test_every_rank_runs_as_many_micro_batches_and_the_ranks_cover_every_item_once():
    rng = random.Random(1)
    items = list(range(30))
    lengths = [rng.choice([8, 9, 10, 100, 120]) for _ in items]
    per_rank = [packing.micro_batches(items, lengths, 130, Dist(rank=r, world=3)) for r in range(3)]
    assert len({len(chunks) for chunks in per_rank}) == 1
    assert any(not real for chunks in per_rank for _, real in chunks)  # the shares bin unevenly here
    real = [i for chunks in per_rank for chunk, ok in chunks if ok for i in chunk]
    assert sorted(real) == items
    assert packing.micro_batches(items, lengths, 130, Dist()) == [(c, True) for c in
                                                                   [[items[i] for i in b] for b in
                                                                    packing.token_bins(lengths, 130)]]


def test_the_row_restarts_positions_per_episode_and_keeps_only_response_targets():
    eps = episodes(3)
    row = packing.pack_row(eps)
    lengths = packing.tokens(eps)
    assert row.input_ids.shape == (1, sum(lengths))  # no padding
    assert row.cu_seq_lens.tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    assert row.position_ids[0].tolist() == [j for n in lengths for j in range(n)]
    assert row.targets.tolist() == [t for ep in eps for t in ep.response_ids]
    assert row.max_length == max(lengths)


# ----------------------------------------------------------------------------- the same numbers
def _forward(model_dir: str, attention: str | None, eps: list[Episode], packed: bool):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attention)
    batch = pack(eps, 0, packed=packed)
    logp, entropy = token_logprobs(model, batch, 0.7, entropy_grad=True)
    mask = batch.response_mask
    ((logp * batch.advantages).sum() + 0.1 * (entropy * mask).sum()).backward()
    return logp * mask, entropy * mask, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("model", ["tiny", "tiny_chat"])
def test_packed_logprobs_entropies_and_gradients_equal_the_padded_ones(model, tiny_model_dir):
    model_dir = tiny_model_dir if model == "tiny" else CHAT
    eps = episodes(6, vocab=40 if model == "tiny" else 280)
    padded = _forward(model_dir, None, eps, packed=False)  # transformers' own SDPA with a padding mask
    packed = _forward(model_dir, packing.VARLEN, eps, packed=True)
    assert close(padded[0], packed[0]) and close(padded[1], packed[1])
    assert padded[0].abs().sum() > 0 and padded[1].abs().sum() > 0
    assert all(close(padded[2][n], packed[2][n]) for n in padded[2])


def test_packed_critic_values_and_gradients_equal_the_padded_ones(tiny_model_dir):
    eps = episodes(6)
    out = []
    for attention, packed in ((None, False), (packing.VARLEN, True)):
        critic = ValueModel(tiny_model_dir, seed=0, attn_implementation=attention)
        batch = pack(eps, 0, packed=packed)
        values = token_values(critic, batch) * batch.response_mask
        (values ** 2).sum().backward()
        out.append((values, {n: p.grad for n, p in critic.named_parameters()}))
    assert close(out[0][0], out[1][0]) and out[0][0].abs().sum() > 0
    assert all(close(out[0][1][n], out[1][1][n]) for n in out[0][1])


def make_learner(model_dir: str, algo, budget: int | None, lora_r: int = 0, **kw) -> Learner:
    # lr 1e-5: Adam moves a weight by ~lr whatever its gradient's size, so one whose gradient is ~0 may step
    # either way; a small lr keeps the later steps' weights, and so their gradients, comparable.
    cfg = LearnerConfig(lr=1e-5, warmup_ratio=0.0, schedule="constant", epochs=2, minibatch_size=4,
                        micro_batch_size=2, grad_clip=1e6, max_tokens_per_micro_batch=budget, lora=LoraConfig(r=lora_r),
                        **kw)
    return Learner(model_dir, cfg, algo, device="cpu", dtype=torch.float32, total_updates=100, pad_id=0,
                   temperature=0.7, max_new_tokens=64)


def recorded_update(learner: Learner, eps: list[Episode], extra: list[Episode] = ()):
    """The update's metrics and, per optimizer step, the policy's (and critic's) gradients as stepped."""
    grads: list[dict[str, torch.Tensor]] = []
    for opt, tag in ((learner.optimizer, "policy"), (learner.critic_optimizer, "critic")):
        if opt is not None:
            opt.register_step_pre_hook(lambda opt, args, kwargs, tag=tag: grads.append(
                {f"{tag}.{i}": p.grad.clone() for i, p in enumerate(opt.param_groups[0]["params"]) if p.grad is not None}))
    return learner.update(eps, extra), grads


ALGOS = {  # name -> overrides beyond algo=NAME: the KL term on, so the reference's log-probs are packed too
    "vineppo": [], "ppo": [], "grpo": [], "rloo": [],
    "grpo-seq-mean-token-mean": ["algo.loss_agg=seq-mean-token-mean"],
    "grpo-seq-mean-token-sum-norm": ["algo.loss_agg=seq-mean-token-sum-norm", "algo.kl_reduction=sequence_sum"],
    "grpo-gspo": ["algo.ratio_level=sequence", "algo.entropy_coef=0.01", "algo.tis_cap=2.0"],
}


@pytest.mark.parametrize("name", list(ALGOS))
def test_a_packed_update_equals_the_padded_one_for_every_algorithm(name, make_cfg, tiny_model_dir):
    algo = make_cfg(f"algo={name.split('-')[0]}", "algo.kl_coef=0.05", *ALGOS[name]).algo
    eps = episodes(8, seed=3)
    # VinePPO's tree continuations join the same steps; a budget of 60 tokens regroups the minibatches'
    # episodes into micro-batches of 1-5 (some alone: longer than the budget), unlike the padded pairs.
    extra = episodes(4, seed=4) if name == "vineppo" else []
    padded_m, padded_g = recorded_update(make_learner(tiny_model_dir, algo, None), eps, extra)
    packed = make_learner(tiny_model_dir, algo, 60)
    packed_m, packed_g = recorded_update(packed, eps, extra)
    assert packed.policy.config._attn_implementation == packing.VARLEN
    assert len(padded_g) == len(packed_g) == 4 * (2 if name == "ppo" else 1)  # 2 epochs x 2 minibatches
    for a, b in zip(padded_g, packed_g):
        assert a.keys() == b.keys() and all(close(a[k], b[k]) for k in a), name
    assert padded_m.keys() == packed_m.keys()
    for k, v in padded_m.items():
        assert abs(v - packed_m[k]) <= TOL * max(1.0, abs(v)), (k, v, packed_m[k])


def test_a_packed_lora_update_equals_the_padded_one(tiny_model_dir):
    algo = AlgoConfig(name="grpo", kl_coef=0.05)  # the reference: the same model with the adapters off
    eps = episodes(8, seed=5)
    runs = [recorded_update(make_learner(tiny_model_dir, algo, budget, lora_r=4), eps) for budget in (None, 50)]
    (m1, g1), (m2, g2) = runs
    assert len(g1) == len(g2) == 4 and all(a.keys() == b.keys() for a, b in zip(g1, g2))
    assert all(close(a[k], b[k]) for a, b in zip(g1, g2) for k in a)
    assert all(abs(m1[k] - m2[k]) <= TOL * max(1.0, abs(m1[k])) for k in m1)


def test_micro_batches_hold_the_budget_and_compute_no_padding(tiny_model_dir):
    learner = make_learner(tiny_model_dir, AlgoConfig(name="ppo", kl_coef=0.05), 70)
    shapes: list[tuple[int, ...]] = []
    for model in (learner.policy, learner.ref, learner.critic.backbone):
        model.get_input_embeddings().register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    eps = episodes(8, seed=6, long=60)
    learner.update(eps)
    lengths = packing.tokens(eps)
    assert shapes and all(s[0] == 1 for s in shapes)  # one row per micro-batch
    assert all(s[1] <= 70 or s[1] in lengths for s in shapes)  # the budget, or one over-long episode alone
    # Every pass (old log-probs, reference, values; 2 epochs of policy and critic) saw each token exactly once.
    assert sum(s[1] for s in shapes) == sum(lengths) * (3 + 2 * 2)


@pytest.mark.parametrize("budget,ok", [("80", True), ("79", False), ("0", False)])
def test_a_budget_that_cannot_hold_one_response_is_refused_before_compute(make_cfg, budget, ok):
    overrides = ("rollout.max_new_tokens=80", f"learner.max_tokens_per_micro_batch={budget}")
    if ok:
        assert make_cfg(*overrides).learner.max_tokens_per_micro_batch == int(budget)
        return
    with pytest.raises(ConfigError, match=f"learner.max_tokens_per_micro_batch={budget} cannot hold one full "
                                          r"response \(rollout.max_new_tokens=80\)"):
        make_cfg(*overrides)


@pytest.mark.vllm
def test_packed_learner_logprobs_equal_the_real_engines(vllm_engine, initial_weights, tiny_model_dir, tiny_tokenizer):
    """The engine's sampled log-probs against the packed learner's (the loop's learner/logprob_mismatch)."""
    from rlreason.engine.base import SamplingParams

    vllm_engine.sync_weights(initial_weights.items(), 0)
    prompts = [tiny_tokenizer(t)["input_ids"] for t in ("1+2*3=", "4-5*6+7=", "8*9=")]
    outs = vllm_engine.generate(prompts, SamplingParams(n=4, temperature=0.7, max_tokens=48, seed=7))  # the learner's
    eps = episodes(12)
    for ep, (p, c) in zip(eps, [(p, c) for p, cs in zip(prompts, outs) for c in cs]):
        ep.prompt_ids, ep.response_ids, ep.logprobs = p, list(c.token_ids), list(c.logprobs)
        ep.advantages = [1.0] * len(c.token_ids)
    learner = make_learner(tiny_model_dir, AlgoConfig(name="grpo", kl_coef=0.0), 64)
    assert len(packing.token_bins(packing.tokens(eps), 64)) > 1
    mine = learner.logprobs(eps)
    gaps = [abs(a - b) for ep, lp in zip(eps, mine) for a, b in zip(ep.logprobs, lp)]
    assert len(gaps) == sum(len(ep.response_ids) for ep in eps)
    assert sum(gaps) / len(gaps) < 1e-5 and max(gaps) < 1e-4


def test_a_packed_update_under_gradient_checkpointing_equals_the_padded_one(tiny_model_dir):
    """Checkpointing recomputes each layer with the row's kwargs (the episodes' bounds) in the backward."""
    algo = AlgoConfig(name="ppo", kl_coef=0.05)
    eps = episodes(8, seed=7)
    padded = recorded_update(make_learner(tiny_model_dir, algo, None), eps)[1]
    learner = make_learner(tiny_model_dir, algo, 60)
    learner.policy.gradient_checkpointing_enable()
    learner.critic.backbone.gradient_checkpointing_enable()
    packed = recorded_update(learner, eps)[1]
    assert learner.policy.is_gradient_checkpointing and len(padded) == len(packed) == 8
    assert all(close(a[k], b[k]) for a, b in zip(padded, packed) for k in a)
