"""After the learner changes the weights and syncs them, the engine samples from exactly that policy.

Reference: the learner-side fp32 torch model, teacher-forced. Greedy outputs must agree token for token;
reported log-probs of sampled tokens within 1e-3 mean absolute difference, at T = 1 and T = 0.7.
"""

from __future__ import annotations

import pytest
import torch

from rlreason.engine import SamplingParams
from tests.engine.reference import (
    learner_greedy,
    learner_nucleus_logprobs,
    mean_abs_logprob_diff,
    perturb,
    train_a_little,
    weights,
)

TOL = 1e-3


def test_greedy_matches_learner_after_sgd(engine, policy, tiny_tokenizer, arith_texts, prompts):
    perturb(policy, seed=0, scale=0.1)  # away from the near-uniform random init: varied greedy outputs
    train_a_little(policy, tiny_tokenizer, arith_texts, steps=3)
    engine.sync_weights(weights(policy), version=1)
    outs = engine.generate(prompts, SamplingParams(temperature=0.0, max_tokens=40), version=1)
    for prompt, (c,) in zip(prompts, outs):
        assert c.token_ids == learner_greedy(policy, prompt, 40, tiny_tokenizer.eos_token_id)
    # Greedy log-probs are the T = 1 ones.
    assert mean_abs_logprob_diff(policy, prompts, outs, 1.0) < TOL


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_learner(engine, policy, prompts, temperature):
    perturb(policy, seed=1)
    engine.sync_weights(weights(policy), version=2)
    outs = engine.generate(prompts, SamplingParams(n=4, temperature=temperature, max_tokens=32, seed=0), version=2)
    assert sum(len(c.token_ids) for g in outs for c in g) > 100
    assert mean_abs_logprob_diff(policy, prompts, outs, temperature) < TOL


def test_continue_from_matches_learner(engine, policy, prompts):
    perturb(policy, seed=2)
    engine.sync_weights(weights(policy), version=3)
    firsts = engine.generate(prompts, SamplingParams(temperature=1.0, max_tokens=24, seed=1, ignore_eos=True))
    # VinePPO states: prompt + a cut of the response, several cuts per trajectory.
    prefixes = [p + g[0].token_ids[:cut] for p, g in zip(prompts, firsts) for cut in (3, 12)]
    outs = engine.continue_from(prefixes, SamplingParams(n=3, temperature=0.7, max_tokens=16, seed=2), version=3)
    assert [len(g) for g in outs] == [3] * len(prefixes)
    assert mean_abs_logprob_diff(policy, prefixes, outs, 0.7) < TOL


def test_sync_invalidates_cached_prefixes(engine, policy, prompts, initial_weights):
    """Prefixes cached under the old weights must not be reused after a sync."""
    engine.sync_weights(initial_weights.items(), version=4)
    long = [p + p[1:] + p[1:] for p in prompts]  # > one 32-token KV block, so the cache holds them
    params = SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=3)
    engine.generate(long, params)
    perturb(policy, seed=3, scale=0.2)
    engine.sync_weights(weights(policy), version=5)
    assert mean_abs_logprob_diff(policy, long, engine.generate(long, params, version=5), 1.0) < TOL


@pytest.mark.vllm
def test_without_reset_cached_prefixes_go_stale(vllm_engine, policy, prompts, initial_weights, monkeypatch):
    """Why sync resets the cache: skipping the reset makes the test above fail (it has teeth)."""
    vllm_engine.sync_weights(initial_weights.items(), version=6)
    monkeypatch.setattr(vllm_engine, "reset_prefix_cache", lambda: None)
    long = [p + p[1:] + p[1:] for p in prompts]
    params = SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=3)
    vllm_engine.generate(long, params)
    perturb(policy, seed=4, scale=0.2)
    vllm_engine.sync_weights(weights(policy), version=7)
    stale = mean_abs_logprob_diff(policy, long, vllm_engine.generate(long, params), 1.0)
    print(f"stale-cache log-prob error: {stale:.3f}")
    assert stale > 10 * TOL
    monkeypatch.undo()
    vllm_engine.reset_prefix_cache()


def test_top_p_logprobs_are_the_nucleus_renormalised_ones(engine, policy, prompts):
    perturb(policy, seed=5, scale=0.1)
    engine.sync_weights(weights(policy), version=8)
    outs = engine.generate(prompts, SamplingParams(n=4, temperature=0.7, top_p=0.8, max_tokens=24, seed=4))
    diffs = [(learner_nucleus_logprobs(policy, p, c.token_ids, 0.7, 0.8) - torch.tensor(c.logprobs)).abs()
             for p, g in zip(prompts, outs) for c in g if c.token_ids]
    assert torch.cat(diffs).mean().item() < TOL


@pytest.mark.vllm
def test_vllm_sync_through_disk_matches_learner(vllm_engine, policy, prompts, tmp_path):
    """The multiprocess / GPU path (safetensors + reload from a path), exercised on the in-process engine."""
    from rlreason.engine import _vllm_compat

    perturb(policy, seed=6, scale=0.1)
    _vllm_compat.push_weights(vllm_engine.llm, weights(policy), str(tmp_path))
    vllm_engine.reset_prefix_cache()
    outs = vllm_engine.generate(prompts, SamplingParams(n=2, temperature=0.7, max_tokens=24, seed=5))
    assert mean_abs_logprob_diff(policy, prompts, outs, 0.7) < TOL
