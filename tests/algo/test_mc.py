"""Adaptive K (the reference's confidence-interval-aware expander), batched: its rule and its bias."""

import math
import random

import pytest

from rlreason.algo.mc import adaptive_continuation_rewards, ci_length, expected_adaptive_value
from rlreason.engine.base import Completion
from rlreason.reward.grader import Verdict
from rlreason.seeds import SeedStream, sample_seed


class CountingEngine:
    """Answers every request with n one-token completions and records each call's requests."""

    def __init__(self):
        self.calls = []

    def continue_from(self, prefixes, params, version=None):
        self.calls.append([(tuple(p), sp.n, sp.seed) for p, sp in zip(prefixes, params)])
        return [[Completion([7], "x", [0.0], "stop") for _ in range(sp.n)] for sp in params]


class BernoulliGrader:
    """Each graded continuation of the state whose text is str(p) is right with probability p."""

    def __init__(self, seed=0):
        self.rng = random.Random(seed)

    def grade(self, texts, golds, truncated):
        return [Verdict(float(self.rng.random() < float(t[:-1])), "") for t in texts]


def run(ps, k0=2, cap=4, new=4, ci=0.05, seeds=None, seed=0):
    engine = CountingEngine()
    n = len(ps)
    rewards, outs, rounds = adaptive_continuation_rewards(
        engine, BernoulliGrader(seed), [[i] for i in range(n)], [str(p) for p in ps], ["a"] * n, [0] * n, [8] * n,
        k0=k0, max_rollouts=cap, new_rollouts=new, ci_threshold=ci, seeds=seeds, temperature=1.0, top_p=1.0,
        max_new_tokens=8, stop=(), version=None)
    return engine, rewards, outs, rounds


def test_ci_length_is_the_references_wald_interval():
    assert ci_length([1.0, 0.0]) == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 2))
    assert ci_length([1.0, 1.0, 1.0]) == 0.0 and ci_length([0.0] * 5) == 0.0


def test_unanimous_states_stop_at_k0_and_mixed_ones_run_to_the_cap_one_call_per_round():
    engine, rewards, outs, rounds = run([0.0, 1.0, 0.5] * 50, k0=2, cap=7, new=3)
    for i, r in enumerate(rewards):
        assert len(r) == len(outs[i])
        if len(set(r[:2])) == 1:
            assert len(r) == 2  # p = 0 or 1 after K0: interval 0, done
        else:
            assert len(r) == 7  # 2, then 3 more, then the last 2 up to the cap
    assert rounds == len(engine.calls) == 3
    assert [sp for _, sp, _ in engine.calls[2]] == [2] * len(engine.calls[2])
    assert all(len(r) == 2 for r in rewards[0:150:3]) and all(len(r) == 2 for r in rewards[1:150:3])


def test_each_round_takes_fresh_seeds_from_the_mc_block():
    engine, rewards, *_ = run([0.5] * 20, k0=2, cap=6, new=2, seeds=SeedStream(5, 3))
    seeds = [(s, n) for call in engine.calls for _, n, s in call]
    drawn = [s + j for s, n in seeds for j in range(n)]
    assert len(drawn) == len(set(drawn)) == sum(len(r) for r in rewards)
    assert seeds[0][0] == sample_seed(5, 3, "mc", 0)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_the_sampler_has_exactly_the_stated_bias(p):
    """The mean of the adaptive sample matches the exact enumeration, which is not p away from 0.5:
    stopping on a unanimous start pulls values towards 0 and 1."""
    expected = expected_adaptive_value(p, 2, 4, 4, 0.05)
    _, rewards, _, _ = run([p] * 20000, k0=2, cap=4, new=4, seed=11)
    values = [sum(r) / len(r) for r in rewards]
    mean = sum(values) / len(values)
    se = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 / len(values) ** 0.5
    assert abs(mean - expected) < 4 * se
    if p != 0.5:
        assert abs(expected - p) > 0.04 and abs(mean - p) > 10 * se  # the bias is real, and measured
    # exact enumeration by hand for K0 = 2, cap 4: p^2 + p (1 - p) (1 + 2p) / 2
    assert expected == pytest.approx(p ** 2 + p * (1 - p) * (1 + 2 * p) / 2)
