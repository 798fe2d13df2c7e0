import math

import pytest

from rlreason.algo.advantages import gae, grpo_advantages, rloo_advantages


def test_grpo_normalises_by_group_std():
    # rewards 1,0,0,1: mean 0.5, population std 0.5 -> +-1
    assert grpo_advantages([1, 0, 0, 1]) == pytest.approx([1, -1, -1, 1], abs=1e-5)


def test_dr_grpo_only_centres():
    assert grpo_advantages([1, 0, 0, 0], normalize_std=False) == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_grpo_zero_variance_group_gives_zero():
    assert grpo_advantages([1, 1, 1]) == [0.0, 0.0, 0.0]


def test_rloo_leave_one_out():
    # r = [1, 0, 0, 1]; baseline for i=0 is mean(0,0,1) = 1/3
    assert rloo_advantages([1, 0, 0, 1]) == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    with pytest.raises(ValueError):
        rloo_advantages([1])


def test_gae_gamma_lambda_one_is_return_minus_value():
    rewards = [0, 0, 1]
    values = [0.2, 0.5, 0.7]
    adv, ret = gae(rewards, values, 1.0, 1.0)
    assert adv == pytest.approx([0.8, 0.5, 0.3])
    assert ret == pytest.approx([1, 1, 1])


def test_gae_hand_computed_discounted():
    rewards = [0.0, 1.0]
    values = [0.5, 0.4]
    g, lam = 0.9, 0.5
    d1 = 1.0 + 0 - 0.4  # terminal next value is 0
    d0 = 0.0 + g * 0.4 - 0.5
    adv, ret = gae(rewards, values, g, lam)
    assert adv == pytest.approx([d0 + g * lam * d1, d1])
    assert ret == pytest.approx([adv[0] + 0.5, adv[1] + 0.4])
    assert all(math.isfinite(a) for a in adv)
