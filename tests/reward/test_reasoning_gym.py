"""reasoning-gym's scorers as rlreason reward functions (rlreason/reward/reasoning_gym.py), through the
reward-function path (FunctionGrader: worker processes under reward.timeout_s): on seven of its tasks a gold
answer scores 1, a wrong or hostile one 0, each within the deadline."""

from __future__ import annotations

import inspect
import json
import re
import time

import pytest

pytest.importorskip("reasoning_gym")

from reasoning_gym.factory import DATASETS  # noqa: E402

from rlreason.data.reasoning_gym import generate  # noqa: E402
from rlreason.reward import FunctionGrader  # noqa: E402
from rlreason.reward.reasoning_gym import EVALUATES, MAX_ANSWER_CHARS, score, score_partial  # noqa: E402

# Seven tasks with one gold answer string each, of different kinds (numbers, words, lists, grids).
TASKS = ("chain_sum", "gcd", "basic_arithmetic", "spell_backward", "letter_counting", "word_sorting", "arc_1d")
SPEC = "rlreason.reward.reasoning_gym:score"
TIMEOUT_S = 2.0
SLACK_S = 3.0  # dispatch, pickling a megabyte and a worker's respawn, on a loaded 2-core machine

HOSTILE = [
    "",  # no answer at all
    "the answer is 42",  # no tags
    "<answer>",  # unterminated
    "</answer><answer>",  # reversed
    "<answer></answer>",  # empty
    "<answer>" * 100_000 + "</answer>",  # tag flood
    "<answer>" + "9" * 1_000_000 + "</answer>",  # a megabyte of digits
    "x" * 1_000_000,  # a megabyte of nothing
    "<answer>" + "(" * 50_000 + "1" + ")" * 50_000 + "</answer>",  # deep nesting
    "<answer>__import__('os').system('touch /tmp/rlreason_rg_pwned')</answer>",  # code
    "<answer>9**9**9**9</answer>",  # a tower
    "<answer>\x00\ud800\uffff</answer>",  # control and lone surrogates
    "<answer>１２３４５</answer>",  # fullwidth digits
    "<answer>None</answer>",
    "<answer>[]</answer>",
]


def entries(task: str, n: int = 4):
    return generate(task, {}, seed=7, size=n)


def grade(questions, responses, **kw):
    with FunctionGrader(SPEC, timeout_s=TIMEOUT_S, workers=2, **kw) as g:
        return g.grade(responses, questions)


@pytest.mark.parametrize("task", TASKS)
def test_gold_scores_one_wrong_scores_zero(task):
    qs = entries(task)
    assert all(q.answer for q in qs), "each of these tasks has a gold answer string"
    gold = [f"Let me think.\n<answer>{q.answer}</answer>" for q in qs]
    wrong = [f"<answer>{q.answer}{q.answer}x</answer>" for q in qs]  # contains the gold: partial credit, never 1
    verdicts = grade(qs + qs, gold + wrong)
    assert [v.reward for v in verdicts] == [1.0] * len(qs) + [0.0] * len(qs), [v.detail for v in verdicts]
    assert [v.reason for v in verdicts] == ["correct"] * len(qs) + ["wrong"] * len(qs)


@pytest.mark.parametrize("task", TASKS[:5])
def test_hostile_answers_score_zero_within_the_deadline(task):
    q = entries(task, 1)[0]
    with FunctionGrader(SPEC, timeout_s=TIMEOUT_S, workers=2) as g:
        assert g.grade([f"<answer>{q.answer}</answer>"], [q])[0].reward == 1.0  # the workers up, the entry cached
        start = time.monotonic()
        verdicts = g.grade(HOSTILE, [q] * len(HOSTILE))
        took = time.monotonic() - start
    assert [v.reward for v in verdicts] == [0.0] * len(HOSTILE), [(v.reason, v.detail) for v in verdicts]
    assert all(v.reason == "wrong" for v in verdicts), [(v.reason, v.detail) for v in verdicts]
    # each response within its deadline: the batch in far less than a timeout each
    assert took < TIMEOUT_S * 2 + SLACK_S, f"{took:.1f} s"


def test_the_last_answer_tags_count_and_partial_credit_is_optional():
    q = entries("chain_sum", 1)[0]
    record = q.record
    assert score(f"<answer>0</answer> no, <answer>{q.answer}</answer>", record) == 1.0
    assert score(f"<answer>{q.answer}</answer> no, <answer>0</answer>", record) == 0.0
    # reasoning-gym's own partial credit (len(gold) / len(answer) when the answer contains the gold)
    assert 0 < score_partial(f"<answer>{q.answer} {q.answer}</answer>", record) < 1
    assert score(f"<answer>{q.answer} {q.answer}</answer>", record) == 0.0
    assert score(f"<answer>{'1' * (MAX_ANSWER_CHARS + 1)}</answer>", record) == 0.0


def test_records_survive_json_and_regrade_exactly():
    """The record goes to completions.jsonl and back (python -m rlreason.grade). arc_agi's scorer compares
    tuples that JSON turns into lists: scored against the JSON record itself, its gold would get 0.05."""
    q = entries("arc_agi", 2)[0]
    record = json.loads(json.dumps(q.record))
    gold = f"<answer>{q.answer}</answer>"
    assert score(gold, record) == 1.0
    bare = {k: v for k, v in record.items() if k != "reasoning_gym"}  # the fallback: scored as it is
    assert score_partial(gold, bare) < 1.0  # the reason for regenerating the entry


def test_a_record_from_another_version_is_an_error_not_a_zero():
    q = entries("gcd", 1)[0]
    record = {**q.record, "question": q.record["question"] + " (edited)"}
    with pytest.raises(ValueError, match="another question"):
        score(f"<answer>{q.answer}</answer>", record)
    (v,) = grade([q.__class__(**{**q.__dict__, "record": record})], [f"<answer>{q.answer}</answer>"])
    assert v.reason == "error" and "another question" in v.detail


def test_a_scorer_that_raises_on_a_malformed_answer_gives_zero():
    q = entries("prime_factorization", 1)[0]
    assert score(f"<answer>{q.answer}</answer>", q.record) == 1.0
    assert score("<answer>zzz</answer>", q.record) == 0.0  # its int() raises ValueError


def test_evaluates_lists_every_scorer_that_runs_the_answer_as_code():
    """A reasoning-gym upgrade adding an eval to a scorer must be added to EVALUATES (validation refuses
    those tasks without data.reasoning_gym.allow_eval=true). number_sorting evaluates its own gold only."""
    found = set()
    for name, (cls, _) in DATASETS.items():
        try:
            src = inspect.getsource(cls.score_answer)
        except (OSError, TypeError):
            continue
        if re.search(r"\b(eval|exec|parse_expr|sympify)\(", src):
            found.add(name)
    assert found - {"number_sorting"} == set(EVALUATES)
