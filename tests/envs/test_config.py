"""env.* before any compute: a bad class or a setting it cannot work with is one `rlreason:` line."""

import pytest

from rlreason.config import ConfigError
from rlreason.validate import validate
from tests.envs.helpers import ENVS
from tests.test_errors import cli, compose_cfg


def refused(*overrides: str) -> str:
    with pytest.raises(ConfigError) as e:
        validate(compose_cfg(*overrides))
    return str(e.value)


def test_a_good_class_passes_and_null_is_single_turn():
    validate(compose_cfg(f"env.cls={ENVS}:Counter", "env.max_turns=2"))
    validate(compose_cfg())  # env.cls=null: nothing imported, nothing checked


@pytest.mark.parametrize(("overrides", "words"), [
    (("env.max_turns=0",), "env.max_turns=0 must be >= 1"),
    (("algo=vineppo", "algo.mc.tree=true"), "algo.mc.tree=true is not supported with env.cls"),
    (("algo=vineppo", "algo.mc.max_rollouts=8"), "algo.mc.max_rollouts (adaptive K) is not supported"),
    (("trainer.async_level=1",), "trainer.async_level=1 is not supported with env.cls"),
    (("reward.overlong.penalty=1.0", "reward.overlong.buffer_tokens=8"), "reward.overlong is not supported"),
])
def test_settings_it_cannot_work_with_are_refused(overrides, words):
    extra = () if overrides == ("env.max_turns=0",) else (f"env.cls={ENVS}:Counter",)
    assert words in refused(*extra, *overrides)


def test_cli_bad_class_is_one_line_before_any_compute(tmp_path):
    proc, _, run_dir = cli(tmp_path, f"env.cls={ENVS}:NoReset")
    assert proc.returncode != 0 and proc.stderr.startswith("rlreason: "), proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "has no reset() method" in proc.stderr
    assert not (run_dir / "metrics.jsonl").exists()


def test_a_checkpoint_of_another_environment_does_not_resume():
    from rlreason.trainer.build import fingerprint

    assert fingerprint(compose_cfg(f"env.cls={ENVS}:Counter"))["env.cls"] == f"{ENVS}:Counter"
    assert fingerprint(compose_cfg())["env.cls"] is None


def test_an_env_run_builds_no_checker_of_its_data():
    """data=guess has no built-in checker: its episodes are graded by the environment's step rewards, so the
    run's grader must not be the checker of its task name (it was: `unknown task 'guess'` at build)."""
    from rlreason.config import grader_task
    from rlreason.reward import make_grader
    from rlreason.segment import resolve_rule

    cfg = compose_cfg("experiment=guess")
    validate(cfg)
    task = grader_task(cfg)
    grader = make_grader(cfg.reward, task)
    with pytest.raises(RuntimeError, match="graded by their environment"):
        grader.grade(["guess 5\n"], ["5"])
    assert resolve_rule(task, None) == "lines"  # VinePPO's states inside a turn: one a line by default
