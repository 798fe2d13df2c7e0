"""experiments/value/drift.py: the drift numbers and their no-drift null on hand-made rewards, and the whole
measurement on a two-iteration VinePPO run of the tiny model through the session's vLLM engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from rlreason.config import ConfigError
from tests.trainer import conftest as trainer_conftest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

from value import drift  # noqa: E402

make_cfg = trainer_conftest.make_cfg
ARGS = ["--states", "3", "--k", "2", "--k-truth", "8", "--null", "20"]


# ----------------------------------------------------------------------------- pure functions
def test_drift_stats_on_a_swapped_pair():
    # One state: s (V 0.5), a1 (V 1), a2 (V 0) under A; B swaps the two steps' values.
    A = np.array([[1, 1, 1, 1, 0, 0, 0, 0], [1] * 8, [0] * 8], dtype=float)
    B = A[[0, 2, 1]]
    mc = A.mean(1)  # an estimator equal to A's truth: no error, no flip
    s = drift.drift_stats(A, B, mc, [(0, 1, 2)], None)
    assert s["value"] == pytest.approx(2 / 3) and s["value_mc"] == 0
    assert s["difference"] == pytest.approx(2.0) and s["difference_mc"] == 0  # D goes from +1 to -1
    assert s["rank_counted"] == 1 and s["rank_flip"] == 1.0 and s["rank_flip_mc"] == 0.0
    # Both advantages (+0.5, -0.5) clear the margin 2 SE(s) = 0.38 and change sign under B.
    assert s["advantage_counted"] == 2 and s["advantage_flip"] == 1.0 and s["advantage_flip_mc"] == 0.0
    same = drift.drift_stats(A, A, mc, [(0, 1, 2)], None)
    assert same["value"] == same["difference"] == same["rank_flip"] == same["advantage_flip"] == 0


def test_null_resolves_a_real_drift_and_not_an_absent_one():
    rng = np.random.default_rng(0)
    p = rng.choice([0.1, 0.9], size=30)
    A = (rng.random((30, 64)) < p[:, None]).astype(float)
    B = 1 - A  # every value v becomes 1 - v: a drift of ~0.8 per prefix
    triples = [(3 * i, 3 * i + 1, 3 * i + 2) for i in range(10)]
    mc = A.mean(1)
    observed = drift.drift_stats(A, B, mc, triples, None)
    null = drift.null_stats(observed, A, B, mc, triples, None, 50, np.random.default_rng(1))
    assert null["value"]["resolved"] and null["value"]["p"] == 0.0 and null["value"]["p95"] < 0.2
    assert null["difference"]["resolved"]
    none = drift.drift_stats(A, A, mc, triples, None)
    null = drift.null_stats(none, A, A, mc, triples, None, 50, np.random.default_rng(1))
    assert not null["value"]["resolved"] and null["value"]["p"] == 1.0 and null["value"]["p95"] == 0.0


# ----------------------------------------------------------------------------- a real VinePPO run
@pytest.fixture(scope="module")
def vine_run(make_cfg, vllm_engine, tmp_path_factory) -> Path:
    from rlreason.trainer.loop import train

    run = tmp_path_factory.mktemp("vine-run")
    cfg = make_cfg("algo=vineppo", "trainer.iterations=2", "trainer.eval_every=100", "trainer.eval_max_questions=2",
                   "trainer.eval_samples=1")  # SMALL checkpoints every iteration: iter 1 and 2
    train(cfg, run, engine=vllm_engine)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml", resolve=True)
    return run


def _run(run_dir, out, *extra, engine):
    return drift.run(drift.parse([str(run_dir), "--iterations", "1", *ARGS, *extra, "-o", str(out)]), engine=engine)


@pytest.mark.vllm
def test_a_checkpoint_against_itself_drifts_by_nothing(vine_run, vllm_engine, tmp_path):
    results = _run(vine_run, tmp_path, "--step", "0", engine=vllm_engine)
    assert json.loads((tmp_path / "drift.json").read_text()) == results
    assert "below resolution" in (tmp_path / "drift.md").read_text()
    [r] = results["pairs"]
    assert (r["a"], r["b"]) == (1, 1) and r["counts"]["states"] >= 1
    assert r["counts"]["continuations"] == 2 * r["counts"]["prefixes"] * (8 + 2)
    # Same weights, same seeds: every continuation is the same, so every drift is exactly 0 ...
    assert r["noise"]["tokens_differ"] == 0 and r["noise"]["discordant"] == 0
    o = r["observed"]
    assert o["value"] == 0 and o["difference"] == 0
    assert all(o[k] in (0, None) for k in ("rank_flip", "advantage_flip"))
    # ... and reported below resolution, not as a number
    assert r["null"]["value"]["resolved"] is False and r["null"]["value"]["p"] == 1.0
    for p in r["prefixes"]:
        assert p["truth_A"] == p["truth_B"] and p["truth_A"] * 8 == round(p["truth_A"] * 8)
        assert p["MC-2_A"] in (0.0, 0.5, 1.0)


@pytest.mark.vllm
def test_one_update_changes_samples_and_independent_seeds_show_the_truths_noise(vine_run, vllm_engine, tmp_path):
    same = _run(vine_run, tmp_path / "same", "--step", "0", engine=vllm_engine)["pairs"][0]
    moved = _run(vine_run, tmp_path / "moved", engine=vllm_engine)["pairs"][0]
    assert (moved["a"], moved["b"]) == (1, 2)
    # A's side (states, alternatives, truth A, MC under A) does not depend on B: the same seeds at A
    assert [p | {"truth_B": 0} for p in moved["prefixes"]] == [p | {"truth_B": 0} for p in same["prefixes"]]
    assert moved["noise"]["tokens_differ"] > 0  # the update changed some sampled continuations
    fresh = _run(vine_run, tmp_path / "fresh", "--step", "0", "--coupling", "fresh", engine=vllm_engine)["pairs"][0]
    # The same policy with seeds of its own: the two truths differ by their sampling noise alone
    assert fresh["noise"]["tokens_differ"] > 0 and fresh["observed"]["value"] > 0
    assert fresh["noise"]["delta_se_mean"] > same["noise"]["delta_se_mean"] == 0


def test_bad_input_fails_before_any_compute(tmp_path):
    with pytest.raises(ConfigError, match="--step"):
        drift.check(drift.parse([str(tmp_path), "--iterations", "1", "--step", "-1"]))
    with pytest.raises(ConfigError, match="coupling fresh"):  # 2 x 3 x 400 x 260 mc seeds
        drift.check(drift.parse([str(tmp_path), "--iterations", "1", "--states", "400", "--coupling", "fresh"]))
