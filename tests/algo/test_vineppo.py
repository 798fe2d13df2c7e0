import pytest

from rlreason.algo.vineppo import StepPlan, dedup_states, step_advantages
from rlreason.data.record import Question
from rlreason.rollout import Episode

Q = Question(id="q", problem="p", answer="1")


def ep(prompt, response, reward=1.0):
    return Episode(Q, prompt, response, [0.0] * len(response), "", "stop", reward)


def test_step_advantages_hand_computed():
    # V(s0)=0.5, V(s1)=0.75, V(s2)=1.0, terminal 0, reward 1 on the last step
    assert step_advantages([0.5, 0.75, 1.0], 1.0) == pytest.approx([0.25, 0.25, 0.0])
    # wrong answer: the last step pays the whole drop
    assert step_advantages([0.5, 0.25], 0.0) == pytest.approx([-0.25, -0.25])


def test_step_advantages_telescope_to_reward_minus_initial_value():
    values, reward = [0.3, 0.9, 0.1, 0.6], 1.0
    assert sum(step_advantages(values, reward)) == pytest.approx(reward - values[0])


def test_single_step_is_reward_minus_value():
    assert step_advantages([0.4], 1.0) == pytest.approx([0.6])


def test_dedup_shares_identical_prefixes_across_episodes():
    a = ep([1, 2], [5, 6, 7, 8])
    b = ep([1, 2], [5, 6, 9])
    c = ep([3], [5, 6])
    plans = [StepPlan([0, 2], [2, 4], [0, 0]), StepPlan([0, 2], [2, 3], [0, 0]), StepPlan([0], [2], [0])]
    states, first, per_episode = dedup_states([a, b, c], plans)
    # a and b share the prompt state and the state after their identical first step; c has its own prompt.
    assert states == [[1, 2], [1, 2, 5, 6], [3]]
    assert per_episode == [[0, 1], [0, 1], [2]]
    assert first == [(0, 0), (0, 1), (2, 0)]
