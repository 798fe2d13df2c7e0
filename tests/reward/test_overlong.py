"""DAPO's soft overlong punishment (reward.overlong): the penalty by hand, on verdicts, and on VinePPO's
continuations graded as full responses."""

from __future__ import annotations

import pytest

from rlreason.algo.mc import continuation_rewards
from rlreason.engine.base import Completion
from rlreason.reward.grader import Verdict
from rlreason.reward.overlong import Overlong, overlong_penalty


@pytest.mark.parametrize(("length", "expected"), [
    (0, 0.0), (6, 0.0),  # |y| <= L - B = 6: no penalty
    (7, -0.25 * 0.5), (8, -0.5 * 0.5), (9, -0.75 * 0.5), (10, -0.5),  # (6 - |y|) / 4 * 0.5 up to the budget
    (12, -0.5),  # beyond the budget (cannot happen): the full penalty
])
def test_penalty_hand_computed(length, expected):
    assert overlong_penalty(length, max_tokens=10, buffer_tokens=4, penalty=0.5) == pytest.approx(expected)


def test_penalty_zero_is_off():
    assert overlong_penalty(10, 10, 4, 0.0) == 0.0


def test_verdicts_keep_their_reason_and_carry_the_penalty_as_a_component():
    o = Overlong(max_tokens=10, buffer_tokens=4, penalty=1.0)
    verdicts = [Verdict(1.0, "correct", "7"), Verdict(0.0, "truncated"),
                Verdict(0.7, "wrong", "x", components={"format": 0.7})]
    out = o.apply(verdicts, [8, 10, 3])
    assert [v.reward for v in out] == pytest.approx([0.5, -1.0, 0.7])
    assert [v.reason for v in out] == ["correct", "truncated", "wrong"]  # success is not the reward
    assert [v.success for v in out] == [True, False, False]
    assert [v.components for v in out] == [{"overlong": -0.5}, {"overlong": -1.0}, {"format": 0.7, "overlong": 0.0}]


class FixedEngine:
    """Answers every prefix with continuations of the given token lengths."""

    def __init__(self, lengths):
        self.lengths = lengths

    def continue_from(self, prefixes, params, version=None):
        return [[Completion([5] * n, "#" * n, [0.0] * n, "stop") for n in self.lengths[:sp.n]] for sp in params]


class AllCorrect:
    def grade(self, texts, golds, truncated):
        return [Verdict(0.0, "truncated") if cut else Verdict(1.0, "correct", "1") for cut in truncated]


def test_a_continuation_is_penalised_by_its_full_response_length():
    """Budget 10, buffer 4: a continuation of 3 tokens from a state 5 tokens into the response is a
    response of 8 tokens (-0.5); from the prompt (start 0) it is 3 tokens long (no penalty)."""
    o = Overlong(max_tokens=10, buffer_tokens=4, penalty=1.0)
    rewards, _ = continuation_rewards(FixedEngine([3, 1]), AllCorrect(), [[1], [1, 2]], ["", "abc"], ["1", "1"],
                                      [0, 5], [10, 5], k=2, temperature=1.0, top_p=1.0, max_new_tokens=10, stop=(),
                                      seed=None, version=None, overlong=o)
    assert rewards == [pytest.approx([1.0, 1.0]), pytest.approx([0.5, 1.0])]
    plain, _ = continuation_rewards(FixedEngine([3, 1]), AllCorrect(), [[1], [1, 2]], ["", "abc"], ["1", "1"],
                                    [0, 5], [10, 5], k=2, temperature=1.0, top_p=1.0, max_new_tokens=10, stop=(),
                                    seed=None, version=None)
    assert plain == [[1.0, 1.0], [1.0, 1.0]]
