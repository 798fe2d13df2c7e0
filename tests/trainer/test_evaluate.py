"""Eval metrics on hand-made completions: every number below is worked out by hand."""

from __future__ import annotations

import pytest

from rlreason.data.record import Question
from rlreason.rollout import Episode
from rlreason.trainer.evaluate import markdown, summarize

Q1 = Question("q1", "1+1?", "2", level=1, meta={"subject": "Algebra"})
Q2 = Question("q2", "2+2?", "4", level=2, meta={"subject": "Algebra"})
Q3 = Question("q3", "3+3?", "6", level=2, meta={"subject": "Geometry"})


def ep(q: Question, answer: str | None, tokens: int, reason: str | None = None) -> Episode:
    """A completion of `tokens` tokens whose extracted answer is `answer` (None: no answer / truncated)."""
    truncated = reason == "truncated"
    if reason is None:
        reason = "no_answer" if answer is None else ("correct" if answer == q.answer else "wrong")
    return Episode(q, [1], list(range(tokens)), [0.0] * tokens, f"#### {answer}", "length" if truncated else "stop",
                   reward=float(reason == "correct"), reason=reason, extracted=answer)


def test_accuracy_breakdowns_and_lengths():
    questions = [Q1, Q2, Q3]
    greedy = [[ep(Q1, "2", 10)], [ep(Q2, "5", 20)], [ep(Q3, None, 30)]]
    sampled = [
        [ep(Q1, "2", 4), ep(Q1, "2", 6), ep(Q1, "3", 8), ep(Q1, None, 10)],  # 2/4 right, majority 2: right
        [ep(Q2, "5", 12), ep(Q2, "5", 14), ep(Q2, "4", 16), ep(Q2, None, 18, "truncated")],  # majority 5: wrong
        [ep(Q3, "7", 20), ep(Q3, "8", 22), ep(Q3, None, 24), ep(Q3, None, 26)],  # never right
    ]
    r = summarize(questions, greedy, sampled, 4)
    assert r["questions"] == 3
    assert r["greedy"] == pytest.approx(1 / 3)
    assert r["mean@4"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert r["maj@4"] == pytest.approx(1 / 3)
    assert r["pass@4"] == pytest.approx(2 / 3)
    assert r["by_level"] == {"1": {"questions": 1, "greedy": 1.0, "mean@4": 0.5, "maj@4": 1.0, "pass@4": 1.0},
                             "2": {"questions": 2, "greedy": 0.0, "mean@4": 0.125, "maj@4": 0.0, "pass@4": 0.5}}
    assert set(r["by_subject"]) == {"Algebra", "Geometry"}
    assert r["by_subject"]["Algebra"]["mean@4"] == pytest.approx(3 / 8)
    s = r["responses"]["sampled"]
    # 12 lengths 4, 6, ..., 26: mean 15; p50 between 14 and 16; p95 at rank 0.95 * 11 = 10.45 -> 24 + 0.45 * 2
    assert (s["responses"], s["tokens_mean"], s["tokens_p50"]) == (12, 15.0, 15.0)
    assert s["tokens_p95"] == pytest.approx(24.9)
    assert s["truncated"] == pytest.approx(1 / 12) and s["no_answer"] == pytest.approx(3 / 12)
    g = r["responses"]["greedy"]
    assert (g["tokens_mean"], g["tokens_p50"], g["no_answer"], g["truncated"]) == (20.0, 20.0, pytest.approx(1 / 3), 0.0)

    table = markdown(r, "my-model on math (test)")
    assert table.splitlines()[0].startswith("| my-model on math (test) | questions | greedy | mean@4 | maj@4 | pass@4 |")
    assert "| | 3 | 33.3% | 25.0% | 33.3% | 66.7% | 15 / 15 / 25 | 8.3% | 25.0% |" in table
    assert "| 2 | 2 | 0.0% | 12.5% | 0.0% | 50.0% |" in table and "| Geometry | 1 |" in table


def test_greedy_only_and_no_breakdowns():
    plain = [Question("a", "x", "1"), Question("b", "y", "2")]
    r = summarize(plain, [[ep(plain[0], "1", 3)], [ep(plain[1], "1", 5)]], None, 0)
    assert r["greedy"] == 0.5 and "mean@0" not in r and "by_level" not in r and "by_subject" not in r
    assert list(r["responses"]) == ["greedy"]
    assert "| | 2 | 50.0% | 4 / 4 / 5 | 0.0% | 0.0% |" in markdown(r, "m")
