"""The vine tree (algo.mc.tree): continuations become episodes, and their term is an unbiased estimate of
c * grad V(s) (c = K for a fixed K; with adaptive K it depends on V(s): `tree_weight`), checked against
the exact gradient of a policy small enough to enumerate."""

import itertools
import random

import pytest
import torch

from rlreason.algo.mc import ci_length, next_round
from rlreason.algo.vine_tree import tree_episodes, tree_weight
from rlreason.data.record import Question
from rlreason.engine.base import Completion
from rlreason.rollout import Episode

Q = Question(id="q", problem="p", answer="1")
SRC = Episode(Q, [1, 2], [3, 4, 5], [0.0] * 3, "", "stop", 1.0)
VOCAB, K = 3, 3
CONTS = list(itertools.product(range(VOCAB), repeat=2))  # every 2-token continuation from the state


def reward(c):
    return float((c[0] + 2 * c[1]) % 3 == 1)


def log_prob(theta, c):
    """Tabular policy from the fixed state: first token ~ softmax(theta[0]), second ~ softmax(theta[1 + first])."""
    return torch.log_softmax(theta[0], -1)[c[0]] + torch.log_softmax(theta[1 + c[0]], -1)[c[1]]


def exact_expectation(theta, advantages_of):
    """E over K i.i.d. continuations of sum_j a_j grad log pi(c_j), by enumerating all VOCAB^(2K) draws."""
    probs = {c: log_prob(theta, c).exp().item() for c in CONTS}
    grads = {}
    for c in CONTS:
        t = theta.detach().clone().requires_grad_(True)
        log_prob(t, c).backward()
        grads[c] = t.grad
    total = torch.zeros_like(theta)
    for draw in itertools.product(CONTS, repeat=K):
        weight = 1.0
        for c in draw:
            weight *= probs[c]
        for c, a in advantages_of(list(draw)):
            total += weight * a * grads[c]
    return total


def tree_advantages(draw):
    outs = [Completion(list(c), "", [0.0, 0.0], "stop") for c in draw]
    eps, _ = tree_episodes([SRC], [[1, 2, 3]], [[reward(c) for c in draw]], [outs], limit=10 ** 6,
                           rng=random.Random(0))
    return [(tuple(e.response_ids), e.advantages[0]) for e in eps]


@pytest.fixture
def theta():
    return torch.randn(1 + VOCAB, VOCAB, generator=torch.Generator().manual_seed(0))


def true_grad(theta):
    t = theta.detach().clone().requires_grad_(True)
    value = sum(log_prob(t, c).exp() * reward(c) for c in CONTS)
    value.backward()
    return t.grad


def test_the_tree_term_is_unbiased_for_k_times_the_states_value_gradient(theta):
    got = exact_expectation(theta, tree_advantages)
    want = K * true_grad(theta)
    assert want.abs().max() > 1e-3  # a gradient that is not trivially zero
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_a_baseline_that_includes_the_sample_itself_would_be_biased(theta):
    """The same harness catches a biased estimator: r_j - mean of all K shrinks it to (K - 1) grad V."""
    def inclusive(draw):
        rs = [reward(c) for c in draw]
        return [(c, r - sum(rs) / len(rs)) for c, r in zip(draw, rs)]

    got = exact_expectation(theta, inclusive)
    torch.testing.assert_close(got, (K - 1) * true_grad(theta), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, K * true_grad(theta), atol=1e-4)


def exact_adaptive_expectation(theta, k0, cap, new):
    """The same expectation when the continuations come from adaptive K (algo.mc.max_rollouts, CI length
    0.05, last round capped), by enumerating every draw the rule can make."""
    probs = {c: log_prob(theta, c).exp().item() for c in CONTS}
    coef = dict.fromkeys(CONTS, 0.0)  # sum over draws of P(draw) * advantage, per continuation

    def expand(draw, weight):
        rewards = [reward(c) for c in draw]
        if len(draw) >= cap or ci_length(rewards) <= 0.05:
            for c, a in tree_advantages(draw):
                coef[c] += weight * a
            return
        for more in itertools.product(CONTS, repeat=next_round(len(draw), cap, new, True)):
            w = weight
            for c in more:
                w *= probs[c]
            expand(draw + list(more), w)

    for first in itertools.product(CONTS, repeat=k0):
        w = 1.0
        for c in first:
            w *= probs[c]
        expand(list(first), w)
    total = torch.zeros_like(theta)
    for c in CONTS:
        t = theta.detach().clone().requires_grad_(True)
        log_prob(t, c).backward()
        total += coef[c] * t.grad
    return total


def state_value(theta):
    return sum(log_prob(theta, c).exp().item() * reward(c) for c in CONTS)


def test_with_adaptive_k_the_tree_term_is_c_of_v_times_the_states_value_gradient(theta):
    """K0 = 2, cap 4: unanimous pairs stop (no gradient), mixed ones get 2 more. The term is
    tree_weight(V) * grad V, with c = 2 + 4 V (1 - V) / 3: neither K0 nor the cap."""
    got = exact_adaptive_expectation(theta, 2, 4, 4)
    v = state_value(theta)
    c = tree_weight(v, 2, 4, 4, 0.05)
    assert c == pytest.approx(2 + 4 * v * (1 - v) / 3) and 2 < c < 4
    torch.testing.assert_close(got, c * true_grad(theta), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, 4 * true_grad(theta), atol=1e-3)


def test_tree_weight_exact_figures():
    for v in (0.1, 0.5, 0.8):
        assert tree_weight(v, 4) == 4.0 and tree_weight(v, 3, 3) == pytest.approx(3.0)  # fixed K: c = K
        # K0 = 2, every mixed state ends at n: c = 2 + 2 (n - 2) (n - 3) V (1 - V) / (n - 1)
        for n, cap, capped in ((4, 4, True), (6, 4, False), (10, 10, True)):
            want = 2 + 2 * (n - 2) * (n - 3) * v * (1 - v) / (n - 1)
            assert tree_weight(v, 2, cap, 4, 0.05, cap_last_round=capped) == pytest.approx(want)
    assert [round(tree_weight(v, 2, 4), 2) for v in (0.14, 0.2, 0.33, 0.5)] == [2.16, 2.21, 2.29, 2.33]
    assert [round(tree_weight(v, 2, 4, cap_last_round=False), 2) for v in (0.14, 0.2, 0.33, 0.5)] == [
        2.58, 2.77, 3.06, 3.2]
    with pytest.raises(ValueError):
        tree_weight(0.0, 2, 4)


def test_episodes_mask_the_prefix_drop_zero_advantages_and_keep_a_seeded_subset():
    outs = [[Completion([9, 9], "a", [-0.1, -0.2], "stop"), Completion([8], "b", [-0.3], "stop"),
             Completion([7], "c", [-0.4], "length")],
            [Completion([6], "d", [-0.5], "stop"), Completion([5], "e", [-0.6], "stop")]]
    rewards = [[1.0, 0.0, 0.0], [1.0, 1.0]]  # the second state's siblings agree: no gradient there
    eps, m = tree_episodes([SRC, SRC], [[1, 2], [1, 2, 3]], rewards, outs, limit=10, rng=random.Random(0))
    assert m["tree/eligible"] == 3 and len(eps) == 3
    first = eps[0]
    assert first.prompt_ids == [1, 2] and first.response_ids == [9, 9] and first.logprobs == [-0.1, -0.2]
    assert first.advantages == [1.0, 1.0] and eps[1].advantages == [-0.5] and eps[2].finish_reason == "length"
    a, _ = tree_episodes([SRC, SRC], [[1, 2], [1, 2, 3]], rewards, outs, limit=2, rng=random.Random(4))
    b, _ = tree_episodes([SRC, SRC], [[1, 2], [1, 2, 3]], rewards, outs, limit=2, rng=random.Random(4))
    assert len(a) == 2 and [e.response_ids for e in a] == [e.response_ids for e in b]
