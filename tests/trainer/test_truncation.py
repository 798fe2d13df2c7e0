"""rlreason/trainer/truncation.py: cut responses while training runs."""

import pytest

from rlreason.config import ConfigError
from rlreason.trainer.truncation import TruncationWatch


def test_a_warning_past_half_and_a_stop_after_n_iterations_all_cut():
    watch = TruncationWatch(80, stop_after=3)
    assert watch(1, 0.5) is None  # half is not more than half
    assert "iteration 2: 62% of the responses were cut at rollout.max_new_tokens=80" in watch(2, 0.625)
    assert "raise rollout.max_new_tokens (now 80" in watch(3, 1.0)
    assert watch(4, 1.0)  # two in a row: still a warning
    assert watch(5, 0.9)  # the streak breaks
    watch(6, 1.0), watch(7, 1.0)
    with pytest.raises(ConfigError, match=r"every response was cut at rollout.max_new_tokens=80 for 3 iterations "
                                          r"in a row \(iterations 6-8\)"):
        watch(8, 1.0)


def test_zero_never_stops():
    watch = TruncationWatch(12, stop_after=0)
    assert all(watch(i, 1.0) for i in range(1, 20))
