"""The engine contract beyond parity: versions, grouping, finish reasons, seeds, stats, set-up errors."""

from __future__ import annotations

import sys

import pytest
import torch

from rlreason.config import EngineConfig
from rlreason.engine import SamplingParams, StaleWeightsError, make_engine


def test_stale_version_raises(engine, initial_weights, prompts):
    engine.sync_weights(initial_weights.items(), version=11)
    assert engine.version == 11
    params = SamplingParams(max_tokens=2)
    with pytest.raises(StaleWeightsError):
        engine.generate(prompts, params, version=10)
    with pytest.raises(StaleWeightsError):
        engine.continue_from(prompts, params, version=12)
    assert len(engine.generate(prompts, params, version=11)) == len(prompts)
    assert len(engine.generate(prompts, params)) == len(prompts)  # no version: no check


def test_n_samples_grouped_in_prompt_order(engine, initial_weights, prompts):
    engine.sync_weights(initial_weights.items(), version=0)
    # Prompts of unequal length in shuffled order: an engine that sorts or batches must put them back.
    mixed = [prompts[i] for i in (3, 0, 7, 1, 5)]
    singles = engine.generate(mixed, SamplingParams(temperature=0.0, max_tokens=12))
    groups = engine.generate(mixed, SamplingParams(n=3, temperature=0.0, max_tokens=12))
    assert [len(g) for g in groups] == [3] * len(mixed)
    for (single,), group in zip(singles, groups):
        assert [c.token_ids for c in group] == [single.token_ids] * 3
    assert engine.generate([], SamplingParams()) == []


def test_finish_reasons(engine, initial_weights, prompts, tiny_tokenizer):
    engine.sync_weights(initial_weights.items(), version=0)
    outs = engine.generate(prompts, SamplingParams(n=2, max_tokens=5, ignore_eos=True, seed=0))
    assert all(len(c.token_ids) == len(c.logprobs) == 5 and c.finish_reason == "length" for g in outs for c in g)
    # A stop token ends the completion and is its last token, with its log-prob.
    (greedy,), = engine.generate(prompts[:1], SamplingParams(temperature=0.0, max_tokens=10))
    stop = greedy.token_ids[2]
    (c,), = engine.generate(prompts[:1], SamplingParams(temperature=0.0, max_tokens=10, stop_token_ids=(stop,)))
    assert c.finish_reason == "stop"
    assert c.token_ids == greedy.token_ids[: greedy.token_ids.index(stop) + 1]
    assert len(c.logprobs) == len(c.token_ids)
    assert c.text == tiny_tokenizer.decode(c.token_ids, skip_special_tokens=True)
    # A stop string ends it at the token that completes the string, which stays in token_ids and text.
    text = greedy.text
    assert len(text) >= 5
    (s,), = engine.generate(prompts[:1], SamplingParams(temperature=0.0, max_tokens=10, stop=(text[3:5],)))
    assert s.finish_reason == "stop"
    assert s.text == text[: text.index(text[3:5]) + 2]


def test_seeded_sampling_is_reproducible(engine, initial_weights, prompts):
    engine.sync_weights(initial_weights.items(), version=0)
    params = SamplingParams(n=2, max_tokens=8, seed=5)
    a, b = engine.generate(prompts, params), engine.generate(prompts, params)
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    # Different prompts get different streams, not one seed replayed on each.
    same = engine.generate([prompts[0]] * 2, SamplingParams(max_tokens=16, seed=5))
    assert same[0][0].token_ids != same[1][0].token_ids


def test_sampling_leaves_learner_rng_alone(hf_engine, prompts):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    hf_engine.generate(prompts, SamplingParams(max_tokens=4))
    assert torch.equal(torch.rand(3), expected)


def test_stats_count_tokens(engine, prompts):
    before = engine.stats()["generated_tokens"]
    engine.generate(prompts, SamplingParams(n=2, max_tokens=3, ignore_eos=True))
    assert engine.stats()["generated_tokens"] - before == len(prompts) * 2 * 3


@pytest.mark.vllm
def test_vllm_prefix_cache_hits_on_shared_prefixes(vllm_engine, initial_weights, prompts):
    vllm_engine.sync_weights(initial_weights.items(), version=0)
    long = [p + p[1:] + p[1:] for p in prompts]
    start = vllm_engine.stats()
    vllm_engine.generate(long, SamplingParams(n=4, max_tokens=4))
    vllm_engine.generate(long, SamplingParams(n=4, max_tokens=4))
    end = vllm_engine.stats()
    assert end["prefix_cache_hits"] > start.get("prefix_cache_hits", 0)
    assert 0 < end["prefix_cache_hit_rate"] <= 1


@pytest.mark.vllm
def test_vllm_leaves_torch_threads_to_the_caller(vllm_engine):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(threads)


def test_missing_vllm_says_how_to_install(monkeypatch, tiny_model_dir, tiny_tokenizer):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    with pytest.raises(ImportError, match=r"\.\[cpu\].*engine=hf"):
        make_engine(EngineConfig(name="vllm"), tiny_model_dir, tiny_tokenizer, dtype="float32", seed=0,
                    max_model_len=256)


def test_hf_sync_rejects_unknown_weights(hf_engine, initial_weights):
    with pytest.raises(KeyError, match="unexpected"):
        hf_engine.sync_weights([*initial_weights.items(), ("not.a.weight", torch.zeros(1))], version=1)
    assert hf_engine.version == 0


def test_per_prompt_params(engine, initial_weights, prompts):
    """One SamplingParams per prompt: each request keeps its own budget and seed, in prompt order."""
    engine.sync_weights(initial_weights.items(), version=0)
    budgets = [3, 9, 5, 1]
    each = [SamplingParams(n=2, max_tokens=b, seed=100 + 10 * i, ignore_eos=True) for i, b in enumerate(budgets)]
    outs = engine.generate(prompts[:4], each)
    assert [[len(c.token_ids) for c in g] for g in outs] == [[b, b] for b in budgets]
    assert all(c.finish_reason == "length" and len(c.logprobs) == len(c.token_ids) for g in outs for c in g)
    # Same seeds, same samples; one list entry per prompt or it is an error.
    again = engine.generate(prompts[:4], each)
    assert [[c.token_ids for c in g] for g in outs] == [[c.token_ids for c in g] for g in again]
    with pytest.raises(ValueError, match="one per prompt"):
        engine.generate(prompts[:4], each[:3])


def test_per_prompt_seeds_follow_the_single_params_rule(vllm_engine, initial_weights, prompts):
    """A single SamplingParams seeds prompt i with seed + i * n: the same as spelling it out per prompt
    (vLLM draws sample j of a request seeded s with s + j)."""
    vllm_engine.sync_weights(initial_weights.items(), version=0)
    single = vllm_engine.generate(prompts[:3], SamplingParams(n=2, max_tokens=8, seed=7))
    spelled = vllm_engine.generate(prompts[:3], [SamplingParams(n=2, max_tokens=8, seed=7 + 2 * i) for i in range(3)])
    assert [[c.token_ids for c in g] for g in single] == [[c.token_ids for c in g] for g in spelled]
    # Sample 1 of a request seeded s is sample 0 of one seeded s + 1.
    (pair,), (shifted,) = (vllm_engine.generate(prompts[:1], SamplingParams(n=2, max_tokens=8, seed=s, ignore_eos=True))
                           for s in (20, 21))
    assert pair[1].token_ids == shifted[0].token_ids
