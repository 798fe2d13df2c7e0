"""End-to-end check of extraction + grading on real data: every gold solution must grade as correct
against its own gold answer (the MATH ones through the math-verify pool)."""

import os
import time
from pathlib import Path

import pytest

from rlreason.config import DataConfig
from rlreason.data import load_questions
from rlreason.reward import Grader

DATA = Path(os.environ.get("RLREASON_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent")


def grade_golds(task: str, questions) -> float:
    start = time.perf_counter()
    with Grader(task, timeout_s=5.0, workers=2) as g:
        verdicts = g.grade([q.solution for q in questions], [q.answer for q in questions])
    failures = [(q, v) for q, v in zip(questions, verdicts) if v.reason != "correct"]
    rate = 1 - len(failures) / len(questions)
    print(f"\n{task}: {len(questions) - len(failures)}/{len(questions)} gold solutions graded correct "
          f"({rate:.2%}) in {time.perf_counter() - start:.1f}s")
    for q, v in failures:
        print(f"  {q.id}: {v.reason}: extracted {v.extracted!r} vs gold {q.answer!r}")
    return rate


@needs_data
def test_math500_gold_solutions():
    _, test = load_questions(DataConfig(name="math", test_path=str(DATA / "math500_test.jsonl"),
                                        train_path=str(DATA / "math500_test.jsonl"), max_train=1))
    assert grade_golds("math", test) >= 0.99


@needs_data
def test_gsm8k_gold_solutions():
    train, test = load_questions(DataConfig(name="gsm8k", train_path=str(DATA / "gsm8k_train.jsonl"),
                                            test_path=str(DATA / "gsm8k_test.jsonl")))
    assert grade_golds("gsm8k", train + test) >= 0.999
