"""Environment steps in worker processes: timeouts, crashes, replay and its mismatch check; loading."""

from pathlib import Path

import pytest

from rlreason.envs.load import EnvError, inspect_env
from rlreason.envs.worker import EnvPool, Job

ENVS = Path(__file__).with_name("envs.py")


def spec(name: str) -> str:
    return f"{ENVS}:{name}"


def test_steps_replay_and_continue():
    pool = EnvPool(spec("Counter"), timeout_s=5, workers=1)
    try:
        reset, s1 = pool.run([Job({}, 0, (), ()), Job({}, 0, ("1\n",), ("go\n",))])
        assert (reset.status, reset.observation) == ("ok", "go\n")
        assert (s1.observation, s1.reward, s1.done) == ("n1\n", 1.0, False)
        # a fresh instance replays the two earlier actions, then steps the third: done
        (s3,) = pool.run([Job({}, 0, ("1\n", "2\n", "3\n"), ("go\n", "n1\n", "n2\n"), fresh=True)])
        assert (s3.status, s3.observation, s3.reward, s3.done) == ("ok", "n3\n", 0.0, True)
        assert pool.replays == 1
    finally:
        pool.close()


def test_outcomes_carry_the_workers_replay_cost():
    pool = EnvPool(spec("Slow"), timeout_s=5, workers=1)
    try:
        reset, s1 = pool.run([Job({}, 0, (), ()), Job({}, 0, ("1\n",), ("go\n",))])
        assert (reset.replayed, reset.replay_s, s1.replayed, s1.replay_s) == (0, 0.0, 0, 0.0)  # held: no rebuild
        assert s1.work_s >= 0.05  # its one step
        # a continuation's replay: two recorded steps (100 ms) before the one asked for
        (s3,) = pool.run([Job({}, 0, ("1\n", "2\n", "3\n"), ("go\n", "n1\n", "n2\n"), fresh=True)])
        assert s3.status == "ok" and s3.replayed == 2
        assert 0.1 <= s3.replay_s < s3.work_s and s3.work_s - s3.replay_s >= 0.05
    finally:
        pool.close()


def test_replay_mismatch_is_detected():
    pool = EnvPool(spec("Counter"), timeout_s=5, workers=1)
    try:
        (out,) = pool.run([Job({}, 0, ("1\n", "2\n"), ("go\n", "n9\n"), fresh=True)])
        assert out.status == "mismatch" and "'n1\\n', recorded 'n9\\n'" in out.detail
    finally:
        pool.close()
    flaky = EnvPool(spec("Flaky"), timeout_s=5, workers=1)
    try:
        (out,) = flaky.run([Job({}, 0, ("1\n",), ("go1\n",), fresh=True)])
        assert out.status == "mismatch" and "reset()" in out.detail
    finally:
        flaky.close()


def test_hung_and_crashing_steps_are_timeout_and_error():
    hang = EnvPool(spec("Hang"), timeout_s=0.5, workers=1)
    crash = EnvPool(spec("Crash"), timeout_s=5, workers=1)
    try:
        ok, hung = hang.run([Job({}, 0, ("1\n",), ("go\n",)), Job({}, 1, ("1\n", "2\n"), ("go\n", "n1\n"))])
        assert ok.status == "ok" and hung.status == "timeout" and "reward.timeout_s=0.5" in hung.detail
        (out,) = crash.run([Job({}, 0, ("1\n", "2\n"), ("go\n", "n1\n"))])
        assert out.status == "error" and "RuntimeError: boom" in out.detail
    finally:
        hang.close()
        crash.close()


@pytest.mark.parametrize(("name", "words"), [
    ("NoReset", "has no reset() method"),
    ("BadInit", "cannot be called as (record: dict, seed: int)"),
    ("BadStep", "cannot be called as (self, action: str)"),
    ("Missing", "has no 'Missing'"),
])
def test_bad_classes_are_refused_in_one_line(name, words):
    with pytest.raises(EnvError, match="^env.cls: ") as e:
        inspect_env(spec(name), timeout_s=60)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_import_error_and_description(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    with pytest.raises(EnvError, match="failed to import: ModuleNotFoundError"):
        inspect_env(f"{broken}:Env", timeout_s=60)
    assert inspect_env(spec("Counter"), timeout_s=60) == {"stop": ("\n",), "max_turns": 5}


def test_a_skyrl_gym_class_loads_through_env_cls_and_steps_in_workers():
    pytest.importorskip("skyrl_gym")
    from tests.envs.test_skyrl import SKYRL_ROW

    skyrl = "skyrl_gym.envs.gsm8k.multi_turn_env:GSM8kMultiTurnEnv"
    assert inspect_env(skyrl, timeout_s=120)["stop"] == ()  # no reset(): the loader wrapped it (adapt)
    record = {**SKYRL_ROW, "env_class": "gsm8k_multi_turn"}
    pool = EnvPool(skyrl, timeout_s=30, workers=1, startup_timeout_s=120)
    try:
        (reset,) = pool.run([Job(record, 0, (), ())])
        (wrong,) = pool.run([Job(record, 0, ("#### 70",), (reset.observation,))])
        # a fresh instance replays the wrong answer (its observation checked), then steps the right one
        (right,) = pool.run([Job(record, 0, ("#### 70", "#### 72"), (reset.observation, wrong.observation),
                                 fresh=True)])
    finally:
        pool.close()
    assert (reset.status, wrong.status, wrong.done) == ("ok", "ok", False)
    assert (right.status, right.reward, right.done) == ("ok", 1.0, True)
