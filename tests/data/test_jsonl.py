"""data=jsonl: any JSONL/parquet question file, with configurable fields and prompt templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlreason.config import ConfigError, register_configs, validate
from rlreason.data import DataError, Question, format_prompt, load_questions, load_split, prompt_template
from tests.data.test_loaders import data_cfg, write_jsonl
from tests.trainer.conftest import CONF, SMALL

# The rows of a real user's file (the tiny model's arith task written by hand).
ROWS = [{"prompt": "Q:4a+5\n", "answer": "9"}, {"prompt": "Q:2a*3b-1\n", "answer": 5},
        {"prompt": "Q:7a-7\n", "answer": "0"}]


def jsonl_cfg(train: Path, test: Path | None = None, **overrides):
    return data_cfg("jsonl", train_path=str(train), test_path=str(test or train), **overrides)


def test_fields_answers_and_ids(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", ROWS)
    train, test = load_questions(jsonl_cfg(path, **{"fields.problem": "prompt"}))
    assert train == test
    assert [q.problem for q in train] == [r["prompt"] for r in ROWS]
    assert [q.answer for q in train] == ["9", "5", "0"]  # a number is read as its text
    assert all(q.id.startswith("jsonl-") and q.source == "jsonl" for q in train)
    assert len({q.id for q in train}) == 3
    # Ids hash the content: the same rows in another file, in another order, keep their ids.
    other = write_jsonl(tmp_path / "other.jsonl", ROWS[::-1])
    again, _ = load_questions(jsonl_cfg(other, **{"fields.problem": "prompt"}))
    assert {q.problem: q.id for q in again} == {q.problem: q.id for q in train}


def test_optional_fields_and_subsets(tmp_path):
    rows = [{"q": f"What is {i}+{i}?", "a": str(2 * i), "sol": f"{i}+{i}={2 * i}", "uid": f"row{i}",
             "lvl": "Level 2", "topic": "sums"} for i in range(5)]
    path = write_jsonl(tmp_path / "q.jsonl", rows)
    fields = {"fields.problem": "q", "fields.answer": "a", "fields.solution": "sol", "fields.id": "uid",
              "fields.level": "lvl", "fields.subject": "topic"}
    train, test = load_questions(jsonl_cfg(path, max_train=2, max_test=3, **fields))
    assert (len(train), len(test)) == (2, 3)
    q = test[2]
    assert (q.id, q.solution, q.level, q.meta) == ("jsonl-row2", "2+2=4", 2, {"subject": "sums"})
    assert load_split(jsonl_cfg(path, max_test=3, **fields), "test") == test


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_pylist([{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?", "answer": "4"}]),
                   path)
    train, _ = load_questions(jsonl_cfg(path))
    assert [(q.problem, q.answer) for q in train] == [("1+1?", "2"), ("2+2?", "4")]


@pytest.mark.parametrize(("rows", "line", "message"), [
    ([ROWS[0], {"question": "Q:1a+1\n", "answer": "2"}], 2, "missing field 'prompt' (has answer, question)"),
    ([ROWS[0], ROWS[1], {"prompt": "Q:1a+1\n"}], 3, "missing field 'answer'"),
    ([{"prompt": ["Q:1"], "answer": "1"}], 1, "field 'prompt' should be a string, got list"),
    ([{"prompt": "Q:1a+1\n", "answer": True}], 1, "field 'answer' should be a string, got bool"),
    ([ROWS[0], {"prompt": "  ", "answer": "1"}], 2, "field 'prompt' is empty"),
    ([ROWS[0], "{broken"], 2, "bad JSON"),
])
def test_malformed_rows_named_by_file_and_line(tmp_path, rows, line, message):
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    good = write_jsonl(tmp_path / "good.jsonl", ROWS)
    with pytest.raises(DataError) as e:
        load_questions(jsonl_cfg(good, bad, **{"fields.problem": "prompt"}))
    assert f"{bad}:{line}: {message}" in str(e.value)


# --- prompt templates ---


Q = Question(id="q", problem="What is $\\frac{1}{2}$ of {x}?", answer="x/2")


def test_null_template_is_the_text_as_is(tmp_path):
    assert format_prompt(Q, None) == Q.problem
    path = write_jsonl(tmp_path / "q.jsonl", ROWS)
    assert prompt_template(jsonl_cfg(path)) is None


def test_template_file_keeps_newlines_byte_for_byte(tmp_path):
    text = "Problem:\n{problem}\n\nSolution (end with \\boxed{}):\n"
    file = tmp_path / "template.txt"
    file.write_text(text)
    cfg = data_cfg("gsm8k", prompt_template_file=str(file))  # replaces the data's own template
    assert prompt_template(cfg) == text
    assert format_prompt(Q, prompt_template(cfg)) == f"Problem:\n{Q.problem}\n\nSolution (end with \\boxed{{}}):\n"


def compose_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("config", overrides=[*SMALL, *overrides])


def test_template_with_newline_from_the_command_line():
    """The documented quoting: Hydra's single quotes around a value holding a real newline."""
    cfg = compose_cfg("data=jsonl", "data.train_path=x.jsonl", "data.test_path=y.jsonl",
                      "data.prompt_template='Question: {problem}\nAnswer:'")
    validate(cfg)
    assert cfg.data.prompt_template == "Question: {problem}\nAnswer:"


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot be read"),
    ("Question: no placeholder\n", "must contain '{problem}'"),
])
def test_bad_template_file_fails_validation(tmp_path, content, message):
    file = tmp_path / "t.txt"
    if content is not None:
        file.write_text(content)
    cfg = compose_cfg("data=jsonl", "data.train_path=x.jsonl", "data.test_path=y.jsonl",
                      f"data.prompt_template_file={file}")
    with pytest.raises(ConfigError, match=f"data.prompt_template_file={file}.*{message}"):
        validate(cfg)
