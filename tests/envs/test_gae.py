"""PPO on played episodes: GAE over the action tokens only, each turn's reward at its action's end."""

import pytest

from rlreason.data.record import Question
from rlreason.envs.gae import action_gae
from rlreason.envs.transcript import Transcript
from rlreason.rollout import Episode


def played(rewards=(1.0, 2.0), end="done") -> Episode:
    # response: action0 (3 tokens) obs (2) action1 (2 tokens)
    t = Transcript(0, ["", "o\n", "p\n"], ["a\n", "b\n"], list(rewards), [(0, 3), (5, 7)], end=end)
    return Episode(Question("q", "p", ""), [1], [5, 6, 7, 8, 9, 10, 11], [0.0] * 7, "", "stop",
                   action_mask=[1, 1, 1, 0, 0, 1, 1], env=t)


def test_gae_runs_over_action_tokens_with_rewards_per_turn():
    values = [0.5, 0.6, 0.7, 99.0, 99.0, 0.8, 0.9]  # the observation positions' values must not count
    adv, ret = action_gae(played(), values, gamma=1.0, lam=1.0)
    # gamma = lam = 1: the return-to-go minus the value, at each action token
    assert ret == pytest.approx([3.0, 3.0, 3.0, 0.0, 0.0, 2.0, 2.0])
    assert adv == pytest.approx([2.5, 2.4, 2.3, 0.0, 0.0, 1.2, 1.1])
    adv, _ = action_gae(played(), values, gamma=1.0, lam=0.0)  # one-step TD: the last token of turn 0
    assert adv[2] == pytest.approx(1.0 + 0.8 - 0.7)  # bootstraps from turn 1's first action token


def test_a_failed_episode_returns_nothing():
    adv, ret = action_gae(played(end="timeout"), [0.0] * 7, gamma=1.0, lam=1.0)
    assert ret == [0.0] * 7 and adv == [0.0] * 7
