"""The curriculum benchmark's sfl amortisation: one refresh spread over refresh_every iterations."""

from types import SimpleNamespace

import pytest

from bench.curriculum import _sfl_amortised


def test_one_refresh_is_spread_over_its_period():
    cfg = SimpleNamespace(curriculum=SimpleNamespace(refresh_every=50, n_candidates=1280, n_select=8))
    refresh = (70.0, {"selection": 61.0, "learner": 2.0}, {"curriculum/rollouts_selection": 10240})
    ordinary = {"sfl/selection_s": 1.0, "sfl/iteration_s": 6.0, "sfl/train_rollouts": 128,
                "sfl/selection_rollouts": 0, "sfl/reused_rollouts": 0}
    out = _sfl_amortised(cfg, refresh, ordinary)
    # (refresh + 49 x ordinary) / 50, a refresh iteration being an ordinary one plus the refresh's selection
    assert out["sfl/selection_s_amortised_T50"] == pytest.approx((61.0 + 49 * 1.0) / 50)
    assert out["sfl/iteration_s_amortised_T50"] == pytest.approx(((6.0 - 1.0 + 61.0) + 49 * 6.0) / 50)
    assert out["sfl/selection_rollouts_per_train_rollout_amortised_T50"] == pytest.approx(10240 / 50 / 128)
    assert out["sfl/generated_rollouts_per_train_rollout_amortised_T50"] == pytest.approx(10240 / 50 / 128 + 1)
    assert out["sfl/refresh_candidates_x_attempts"] == "1280 x 8" and out["sfl/refresh_rollouts"] == 10240
