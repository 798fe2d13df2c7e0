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


def run(ps, k0=2, cap=4, new=4, ci=0.05, seeds=None, seed=0, cap_last_round=True):
    engine = CountingEngine()
    n = len(ps)
    rewards, outs, rounds = adaptive_continuation_rewards(
        engine, BernoulliGrader(seed), [[i] for i in range(n)], [str(p) for p in ps], ["a"] * n, [0] * n, [8] * n,
        k0=k0, max_rollouts=cap, new_rollouts=new, ci_threshold=ci, seeds=seeds, cap_last_round=cap_last_round,
        temperature=1.0, top_p=1.0, max_new_tokens=8, stop=(), version=None)
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


def test_cap_last_round_false_is_the_references_full_last_round():
    """The reference samples a full num_new_rollouts while n < max_num_rollouts: at K0 = 2, 4 new, cap 4
    its mixed states end at 6, not 4; the exact expectation follows the same rule."""
    engine, rewards, _, rounds = run([0.0, 1.0, 0.5] * 50, k0=2, cap=4, new=4)
    assert {len(r) for r in rewards if len(set(r[:2])) > 1} == {4}
    engine, rewards, _, rounds = run([0.0, 1.0, 0.5] * 50, k0=2, cap=4, new=4, cap_last_round=False)
    assert {len(r) for r in rewards if len(set(r[:2])) > 1} == {6}
    assert all(len(r) == 2 for r in rewards if len(set(r[:2])) == 1)
    assert rounds == 2 and {n for _, n, _ in engine.calls[1]} == {4}
    p = 0.3
    _, rewards, _, _ = run([p] * 20000, k0=2, cap=4, new=4, seed=5, cap_last_round=False)
    values = [sum(r) / len(r) for r in rewards]
    mean = sum(values) / len(values)
    se = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 / len(values) ** 0.5
    expected = expected_adaptive_value(p, 2, 4, 4, 0.05, cap_last_round=False)
    assert abs(mean - expected) < 4 * se
    assert expected == pytest.approx(bias_k0_2(p, 6) + p)  # mixed states at n = 6
    # Where new_rollouts divides max_rollouts - K0 (the reference's 10, +4, up to 30) the rules agree.
    assert expected_adaptive_value(p, 10, 30, 4, 0.05) == pytest.approx(
        expected_adaptive_value(p, 10, 30, 4, 0.05, cap_last_round=False))


def bias_k0_2(p, n):
    """E[V] - p at K0 = 2 when every mixed state ends at n continuations (mc.py's docstring)."""
    return -p * (1 - p) * (1 - 2 * p) * (1 - 2 / n)


def max_bias(k0, cap, points=400):
    return max(abs(expected_adaptive_value(i / points, k0, cap, 4, 0.05) - i / points) for i in range(1, points))


def test_at_k0_2_the_bias_grows_with_the_cap_towards_0_096():
    worst_p, worst = (3 - math.sqrt(3)) / 6, 1 / (6 * math.sqrt(3))  # argmax and max of p (1 - p) |1 - 2p|
    assert worst == pytest.approx(0.0962, abs=1e-4)
    for cap, figure in [(4, 0.048), (6, 0.064), (10, 0.077), (30, 0.090)]:
        for p in (0.1, worst_p, 0.5, 0.7):
            assert expected_adaptive_value(p, 2, cap, 4, 0.05) - p == pytest.approx(bias_k0_2(p, cap))
        assert -bias_k0_2(worst_p, cap) == pytest.approx(figure, abs=5e-4)
        assert max_bias(2, cap) <= -bias_k0_2(worst_p, cap) + 1e-12
    # a larger K0 lowers it at a given cap
    assert max_bias(4, 30, 200) == pytest.approx(0.070, abs=1e-3)
    assert max_bias(10, 30, 200) == pytest.approx(0.023, abs=1e-3)


class FixedGrader:
    """The state whose text is "a,b" gets rewards a, b, a, b, ... (any values, not only 0/1)."""

    def __init__(self):
        self.seen = {}

    def grade(self, texts, golds, truncated):
        out = []
        for t in texts:
            values = [float(v) for v in t[:-1].split(",")]
            i = self.seen[t] = self.seen.get(t, -1) + 1
            out.append(Verdict(values[i % len(values)], ""))
        return out


def run_fixed(states, k0=2, cap=10, new=4):
    n = len(states)
    rewards, _, _ = adaptive_continuation_rewards(
        CountingEngine(), FixedGrader(), [[i] for i in range(n)], states, ["a"] * n, [0] * n, [8] * n,
        k0=k0, max_rollouts=cap, new_rollouts=new, ci_threshold=0.05, seeds=None,
        temperature=1.0, top_p=1.0, max_new_tokens=8, stop=(), version=None)
    return rewards


def test_the_interval_uses_the_rewards_variance_so_other_rewards_than_0_1_stop_right():
    """p (1 - p) of the mean is no variance outside 0/1: rewards -1 and 1 read as 0 (stop at once),
    all 0.1 as 0.09 (sample to the cap), all 1.1 as negative. The population variance is 1, 0 and 0."""
    assert ci_length([-1.0, 1.0]) == pytest.approx(2 * 1.96 * math.sqrt(1.0 / 2))
    assert ci_length([0.1] * 4) == 0.0 and ci_length([1.1] * 4) == 0.0
    mixed, tenths, over_one, zero_one = run_fixed(["-1,1", "0.1", "1.1", "1,0"], k0=2, cap=10, new=4)
    assert len(mixed) == 10 and len(zero_one) == 10  # mixed: sampled to the cap
    assert tenths == [0.1, 0.1] and over_one == [1.1, 1.1]  # unanimous: stop at K0


@pytest.mark.parametrize("n", [2, 5, 17, 33])
def test_for_0_1_rewards_the_interval_is_the_references_exactly(n):
    """The population variance of 0/1 rewards with mean p is p (1 - p): the reference's interval, so its
    stopping decisions (and the bias figures below) are unchanged."""
    for s in range(n + 1):
        p = s / n
        assert ci_length([1.0] * s + [0.0] * (n - s)) == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n),
                                                                       rel=1e-12, abs=1e-15)
