"""rlreason/data/budget.py: the response budget against the task's gold solutions, before compute."""

from __future__ import annotations

import pytest

from rlreason.config import ConfigError
from rlreason.data.budget import check_budget, gold_lengths, gold_response
from rlreason.data.record import Question


def test_the_check_names_the_share_the_percentiles_and_the_override():
    lengths = list(range(1, 101))  # 1..100 tokens
    with pytest.raises(ConfigError) as e:
        check_budget(lengths, 50, 0.05, "math")
    msg = str(e.value)
    assert "rollout.max_new_tokens=50 cuts 50% of data=math's gold solutions" in msg
    assert "median 50, p90 90, p99 99, longest 100 tokens, over 100 solutions" in msg
    assert "set rollout.max_new_tokens=95 or more" in msg and "rollout.max_gold_cut=null" in msg
    # at the share allowed it passes with a note; more budget, nothing cut; null: no check at all
    assert "cuts 5.0%" in check_budget(lengths, 95, 0.05, "math")
    assert "cuts 0.0%" in check_budget(lengths, 100, 0.05, "math")
    assert check_budget(lengths, 1, None, "math") is None
    assert check_budget([], 1, 0.05, "jsonl") is None  # no gold solutions: nothing to check


class Chars:
    """A tokenizer of one token per character."""

    def __call__(self, texts, add_special_tokens=False, verbose=True):
        return {"input_ids": [list(t) for t in texts]}


def test_gold_responses_of_each_kind():
    solved = Question("a", "p", "7", solution="3+4=7\n#### 7")
    countdown = Question("c", "p", "", source="countdown", record={"nums": [3, 4], "target": 7})
    bare = Question("b", "p", "7")
    assert gold_response(solved) == "3+4=7\n#### 7"
    assert gold_response(countdown).endswith("#### 3+4") or gold_response(countdown).endswith("#### 4+3")
    assert gold_response(bare) is None
    # + 1 for the token that ends the response; questions without a solution are left out
    assert gold_lengths([solved, bare], Chars()) == [len("3+4=7\n#### 7") + 1]
    assert len(gold_lengths([solved] * 5000, Chars())) == 1000  # a sample, evenly spaced


def test_math_solutions_through_a_byte_level_bpe_tokenizer():
    """MATH-500's gold solutions through the realistic stand-in's tokenizer (byte-level BPE, model=tiny_chat):
    the tiny models' 80 tokens cut nearly all of them (median 405 tokens: a 289-token vocabulary is nearly bytes)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from rlreason.data.loaders import parse_math, read_rows

    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "math500_test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data beside the project)")
    tok = AutoTokenizer.from_pretrained(Path(__file__).resolve().parents[2] / "rlreason/model/assets/tiny-chat")
    lengths = gold_lengths([parse_math(row, where) for where, row in read_rows(path)], tok)
    assert len(lengths) == 500
    with pytest.raises(ConfigError, match=r"rollout.max_new_tokens=80 cuts 9\d% of data=math's gold solutions"):
        check_budget(lengths, 80, 0.05, "math")
