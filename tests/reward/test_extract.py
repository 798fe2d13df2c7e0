import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlreason.reward.extract import after_hashes, after_phrase, extract_answer, last_boxed


@pytest.mark.parametrize("text, expected", [
    ("so $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{ {2}^{3} }", "{2}^{3}"),
    ("first \\boxed{1}, final \\fbox{\\{a, b\\}}", "\\{a, b\\}"),
    ("\\boxed 5$ done", "5"),
    ("\\boxed{1} and then \\boxed{\\frac{1}{", None),  # cut mid-answer: no earlier box
    ("\\boxed{}", None),
    ("no box", None),
    ("\\boxed", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_markers_and_fallbacks():
    assert after_hashes("3a+5=8\n#### 8\n") == "8"
    assert after_hashes("#### 1 \n#### 1,234.\nmore") == "1,234"
    assert after_phrase("The answer is 42. I hope that helps.") == "42"
    assert after_phrase("So the final answer is: $\\frac{3}{4}$.\nDone") == "\\frac{3}{4}"
    assert after_phrase("Final Answer: 3.5") == "3.5"
    assert after_phrase("the answer is") is None


def test_task_order():
    text = "\\boxed{7}\n#### 8"
    assert extract_answer(text, "math") == "7"
    assert extract_answer(text, "gsm8k") == extract_answer(text, "arith") == "8"
    assert extract_answer("so the answer is 9.", "gsm8k") == "9"
    assert extract_answer("nothing to see", "math") is None


@pytest.mark.parametrize("text", [
    "\\boxed{" + "{" * 1_000_000,
    "\\boxed{" * 200_000,
    "the answer " * 100_000 + "is",
    "the answer is" + " " * 1_000_000 + ".",
    "####" * 250_000,
    "$" * 1_000_000,
    "x" * 1_000_000,
])
def test_megabyte_inputs_are_linear(text):
    start = time.perf_counter()
    for task in ("math", "gsm8k"):
        extract_answer(text, task)
    assert time.perf_counter() - start < 2.0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\\boxedfb{}#$ :.\nanswerisFinal1/2")), max_size=80),
       st.sampled_from(["math", "gsm8k", "arith"]))
def test_never_raises(text, task):
    answer = extract_answer(text, task)
    assert answer is None or (isinstance(answer, str) and answer.strip() == answer and answer)
