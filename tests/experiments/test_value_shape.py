"""experiments/value/shape.py: the shape of a task's values from a value_analysis.json checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

from value.shape import shape  # noqa: E402


def test_shape_counts_decided_states_step_gaps_and_the_critics_correlation():
    truths = [0.0, 0.0, 0.6, 0.5, 0.5, 0.5]  # two states: (s, s+a1, s+a2)
    critics = [0.1, 0.2, 0.9, 0.4, 0.5, 0.6]
    ck = {"prefixes": [{"truth": t, "critic": c} for t, c in zip(truths, critics)],
          "states": [{"prefixes": [0, 1, 2]}, {"prefixes": [3, 4, 5]}]}
    s = shape(ck)
    assert s["prefixes"] == 6 and s["truth_zero"] == pytest.approx(2 / 6) and s["truth_half"] == pytest.approx(4 / 6)
    assert s["step_gap"] == pytest.approx((0.6 + 0.0) / 2) and s["step_gap_over_0.1"] == 0.5
    assert s["critic_pearson"] > 0.8 and s["critic_mean"] == pytest.approx(sum(critics) / 6)
