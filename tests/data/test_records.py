"""Questions carry their row (`record`), what a reward function reads: data=jsonl without an answer field,
problems built from a row's fields, and data=countdown (generated, or Countdown-Tasks-3to4's rows as they are)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from rlreason.config import ConfigError, register_configs
from rlreason.data import DataError, load_questions, load_split
from rlreason.data.countdown import solutions
from rlreason.reward import make_grader
from rlreason.validate import validate
from tests.data.test_jsonl import jsonl_cfg
from tests.data.test_loaders import write_jsonl
from tests.trainer.conftest import CONF, SMALL

COUNTDOWN_ROWS = [{"target": 98, "nums": [44, 19, 35]}, {"target": 64, "nums": [63, 95, 96]},
                  {"target": 28, "nums": [95, 11, 56]}]  # Countdown-Tasks-3to4's first rows, its field order


def compose_cfg(*overrides: str):
    register_configs()
    model = ["model=tiny_countdown"] if "data=countdown" in overrides else []
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("config", overrides=[*SMALL, *model, *overrides])


def test_every_field_of_the_row_is_kept(tmp_path):
    rows = [{"problem": "Q:4a+5", "answer": 9, "difficulty": "easy", "tests": [1, 2]}]
    (q,), _ = load_questions(jsonl_cfg(write_jsonl(tmp_path / "q.jsonl", rows)))
    assert q.record == rows[0] and q.row() == rows[0]


def test_no_answer_field_with_a_reward_function(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"problem": "Q:4a+5", "target": 9}])
    with pytest.raises(DataError, match="missing field 'answer'"):
        load_questions(jsonl_cfg(path))
    (q,), _ = load_questions(jsonl_cfg(path), needs_answer=False)
    assert q.answer == "" and q.record["target"] == 9
    (q,) = load_split(jsonl_cfg(path, **{"fields.answer": None}), "test", needs_answer=False)
    assert q.answer == ""


def test_problem_from_the_row_fields(tmp_path):
    path = write_jsonl(tmp_path / "cd.jsonl", COUNTDOWN_ROWS)
    train, _ = load_questions(jsonl_cfg(path, **{"fields.problem_template": "Use {nums} to make {target}."}),
                              needs_answer=False)
    assert [q.problem for q in train] == ["Use 44 19 35 to make 98.", "Use 63 95 96 to make 64.",
                                          "Use 95 11 56 to make 28."]
    with pytest.raises(DataError, match=r"names \{numbers\}, a field the row does not have \(it has nums, target\)"):
        load_questions(jsonl_cfg(path, **{"fields.problem_template": "{numbers}"}), needs_answer=False)


def test_jsonl_without_answer_validates_only_with_a_reward_function(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"problem": "x"}])
    base = ["data=jsonl", f"data.train_path={path}", f"data.test_path={path}", "data.fields.answer=null"]
    with pytest.raises(ConfigError, match="data=jsonl needs data.fields.answer"):
        validate(compose_cfg(*base))
    validate(compose_cfg(*base, "reward.fn=rlreason.reward.countdown:countdown_reward"))


def test_countdown_composes_its_checker_as_reward_fn():
    cfg = compose_cfg("data=countdown")
    assert cfg.reward.fn == "rlreason.reward.countdown:countdown_reward"
    assert dict(cfg.reward.weights) == {"format": 0.0} and cfg.data.steps.rule == "lines"
    validate(cfg)
    assert compose_cfg("data=countdown", "reward.weights.format=0.1").reward.weights.format == 0.1
    with pytest.raises(ConfigError, match="data=countdown has no gold answer strings"):
        validate(compose_cfg("data=countdown", "reward.fn=null"))
    with pytest.raises(ConfigError, match="model=tiny is the arith model: it cannot write Countdown's"):
        validate(compose_cfg("data=countdown", "model=tiny"))
    with pytest.raises(ConfigError, match="model=tiny_countdown is built for data=countdown only"):
        validate(compose_cfg("model=tiny_countdown"))


def test_countdown_generated_questions_and_their_checker():
    cfg = compose_cfg("data=countdown", "data.countdown.n_train=200", "data.countdown.n_test=50")
    train, test = load_questions(cfg.data, needs_answer=False)
    assert (len(train), len(test)) == (200, 50) and not {q.id for q in train} & {q.id for q in test}
    assert {q.level for q in train} == {3, 4} and all(q.answer == "" for q in train)
    q = test[0]
    assert q.problem == "Q:" + " ".join(map(str, q.record["nums"])) + f"={q.record['target']}"
    # The checker through the real worker pool, as the loop calls it: a solver's solution is correct.
    work, expr = solutions(q.record["nums"], q.record["target"], limit=1)[0]
    with make_grader(cfg.reward, "fn") as grader:
        good, bad = grader.grade(["\n".join([*work, f"#### {expr}"]), "#### 1+1"], [q, q])
    assert (good.reward, good.reason, good.components) == (1.0, "correct", {"correct": 1.0, "format": 1.0})
    assert (bad.reward, bad.reason, bad.components) == (0.0, "wrong", {"correct": 0.0, "format": 1.0})


def test_countdown_reads_countdown_tasks_rows_as_they_are(tmp_path):
    path = write_jsonl(tmp_path / "cd.jsonl", COUNTDOWN_ROWS)
    cfg = compose_cfg("data=countdown", "data.source=local", f"data.train_path={path}", f"data.test_path={path}",
                      "data.countdown.use_all=true")
    validate(cfg)
    train, _ = load_questions(cfg.data, needs_answer=False)
    assert [q.problem for q in train] == ["Q:44 19 35=98", "Q:63 95 96=64", "Q:95 11 56=28"]
    assert all(q.record["use_all"] is True for q in train)  # TinyZero's rule, where the checker reads it
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"nums": [1, "2", 3], "target": 6}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: not a Countdown record \(nums must be a list of ints"):
        load_questions(compose_cfg("data=countdown", "data.source=local", f"data.train_path={bad}",
                                   f"data.test_path={bad}").data, needs_answer=False)
