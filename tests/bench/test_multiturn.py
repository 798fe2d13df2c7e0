"""The multiturn section: an iteration's parts sum to it, and the committed JSON has its fields."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.multiturn import PARTS, parts, summarise

RESULT = Path(__file__).resolve().parents[2] / "bench" / "results" / "multiturn.json"
SPENT = {"rollout": 2.0, "mc": 5.0, "learner": 1.0, "sync": 0.1, "grading": 0.05}
ENV = {"env/engine_s": 1.5, "env/step_s": 0.3, "mc/engine_s": 3.0, "mc/env_step_s": 1.6,
       "mc/env_worker_s": 0.4, "mc/env_replay_s": 0.1}
COMMON = {"train/response_tokens": 80.0, "train/reward": 0.5, "mc/tokens": 900.0, "mc/steps_per_episode": 4.0,
          "mc/unique_states": 25.0,
          "mc/continuations": 100.0}
MULTI = {**ENV, **COMMON, "env/observation_tokens": 40.0, "env/turns": 4.0, "env/step_jobs": 16.0,
         "env/replayed_actions": 2.0, "env/worker_s": 0.01, "env/replay_s": 0.001, "mc/env_step_jobs": 200.0,
         "mc/env_replayed_actions": 300.0}


def test_multi_turn_parts_split_the_iteration():
    out = parts(8.5, SPENT, MULTI)
    assert set(out) == set(PARTS) and sum(out.values()) == pytest.approx(8.5)
    assert out["generation"] == 1.5 and out["env_steps"] == 0.3
    assert out["rollout_other"] == pytest.approx(0.2)
    # the workers spent a quarter of their MC seconds replaying: a quarter of the 1.6 s wait
    assert out["replay"] == pytest.approx(0.4) and out["mc_env_steps"] == pytest.approx(1.2)
    assert out["mc_other"] == pytest.approx(0.4) and out["other"] == pytest.approx(0.5)  # sync, grading, the rest


def test_single_turn_parts_take_the_engine_timers():
    spent = {**SPENT, "engine_generate": 1.8, "engine_continue_from": 4.5}
    out = parts(8.5, spent, COMMON)
    assert (out["generation"], out["mc_generation"]) == (1.8, 4.5)
    assert out["env_steps"] == out["replay"] == out["mc_env_steps"] == 0.0
    assert sum(out.values()) == pytest.approx(8.5)


def test_shares_add_up_over_medians():
    cfg = SimpleNamespace(trainer=SimpleNamespace(questions_per_iteration=2), rollout=SimpleNamespace(samples_per_question=2))
    results = [(8.5, SPENT, MULTI), (9.0, {**SPENT, "learner": 1.5}, MULTI), (20.0, {**SPENT, "mc": 15.0}, MULTI)]
    out = summarise("m", cfg, results)
    assert sum(out[f"m/{p}_share"] for p in PARTS) == pytest.approx(1.0)
    assert out["m/iteration_s"] == 9.0 and out["m/tokens/generated_per_episode"] == 40.0
    assert out["m/env_share"] == pytest.approx((out["m/env_steps_s"] + out["m/replay_s"] + out["m/mc_env_steps_s"])
                                               / sum(out[f"m/{p}_s"] for p in PARTS))


def test_the_committed_result_has_its_fields_and_shares_add_up():
    record = json.loads(RESULT.read_text())
    assert record["section"] == "multiturn" and record["machine"]["cores"]
    res = record["results"]
    for name in ("multiturn", "singleturn"):
        assert sum(res[f"{name}/{p}_share"] for p in PARTS) == pytest.approx(1.0)
        assert res[f"{name}/iteration_s"] > 0 and res[f"{name}/tokens/generated_per_episode"] > 0
        assert res[f"{name}/env_share"] == pytest.approx(
            res[f"{name}/env_steps_share"] + res[f"{name}/replay_share"] + res[f"{name}/mc_env_steps_share"])
    assert res["singleturn/env_share"] == 0.0 and res["multiturn/env_share"] > 0
    assert res["multiturn/mc_env_replayed_actions"] > 0 and res["config/timed_iterations"] >= 3
    assert "comparator" in res["notes"]
