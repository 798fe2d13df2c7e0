"""The Countdown checker: exact grading, the number rules, and hostile answers graded 0 quickly.

The record's target is reachable, so a hostile answer graded `correct` here is a checker bug.
"""

from __future__ import annotations

import ast
import operator
import re
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlreason.reward import countdown as cd
from rlreason.reward.countdown import countdown_reward, countdown_reward_use_all

RECORD = {"nums": [25, 3, 2, 7], "target": 56}
BOTH = {"correct": 1.0, "format": 1.0}
FORMAT_ONLY = {"correct": 0.0, "format": 1.0}
NEITHER = {"correct": 0.0, "format": 0.0}
BOUND_S = 1.0  # a sanity bound: each grading takes microseconds; a quadratic or runaway parse takes far longer


def timed(response, record=RECORD, fn=countdown_reward) -> dict[str, float]:
    start = time.perf_counter()
    out = fn(response, record)
    assert time.perf_counter() - start < BOUND_S
    return out


@pytest.mark.parametrize("response", [
    "25+3=28\n28*2=56\n#### (25+3)*2",
    "#### (25+3)*2\n\n  \n",  # trailing blank lines and spaces
    "####(25 + 3) *\t2",  # spaces and tabs anywhere, none needed after ####
    "   #### 2*(3+25)",  # leading spaces on the answer line
    "#### (25-7)*3+2",  # every number, once each
    "#### ((((25+3))))*2",
    "work\r\n#### (25+3)*2\r\n",
])
def test_correct(response):
    assert timed(response) == BOTH


def test_fractions_that_cancel_exactly():
    assert timed("#### (8/3)*3", {"nums": [8, 3, 3], "target": 8}) == BOTH
    assert timed("#### 6/(1-3/4)", {"nums": [1, 3, 4, 6], "target": 24}) == BOTH
    assert timed("#### 7/2*2", {"nums": [7, 2, 2], "target": 7}) == BOTH  # left to right: (7/2)*2
    assert timed("#### 7/(2*2)", {"nums": [7, 2, 2], "target": 7}) == FORMAT_ONLY


@pytest.mark.parametrize("response", [
    "#### 25*2+3+3",  # 3 used twice, given once
    "#### 28*2",  # 28 not given
    "#### 25+3*2",  # precedence: 31
    "#### 1/0",  # division by zero: well-formed, no value
    "#### (25+3)*2/(7-7)",
    "#### 56+0",  # 56 and 0 not given
])
def test_format_only(response):
    assert timed(response) == FORMAT_ONLY


def test_numbers_given_twice_may_be_used_twice():
    assert timed("#### 3*3+1", {"nums": [3, 3, 1], "target": 10}) == BOTH
    assert timed("#### 3*3*3+1", {"nums": [3, 3, 1], "target": 28}) == FORMAT_ONLY


def test_use_all_rule():
    partial, full = "#### (25+3)*2", "#### (25+3)*2*(7/7)"
    rec = {"nums": [25, 3, 2, 7, 7], "target": 56}
    assert timed(partial, rec) == BOTH and timed(full, rec) == BOTH
    assert timed(partial, {**rec, "use_all": True}) == FORMAT_ONLY
    assert timed(full, {**rec, "use_all": True}) == BOTH
    assert timed(partial, rec, countdown_reward_use_all) == FORMAT_ONLY
    assert timed(full, rec, countdown_reward_use_all) == BOTH
    assert timed(partial, {**rec, "use_all": False}, countdown_reward_use_all) == FORMAT_ONLY  # forced


HOSTILE_NO_FORMAT = [
    "", "   \n\n", "no answer", "56", "the answer is (25+3)*2",
    "#### (25+3)*2\nsorry, let me redo that",  # `####` not on the last line
    "#### ", "####", "#### 2**5", "#### 2^5", "#### -3+59", "#### +56", "#### (25+3)*2)", "#### ((25+3)*2",
    "#### ()", "#### 25 3", "#### 25+", "#### 56.0", "#### 5_6", "#### 0x38", "#### 1e2",
    "#### ٥٦", "#### ５６", "#### 𝟓𝟔", "#### ²",  # look-alike digits: str.isdigit says yes to all but ²
    "#### (25+3)\u22172", "#### (25+3)\u00d72", "#### (25+3)\u00a0*2", "#### (25+3)\u2028*2",  # whitespace only ASCII space and tab
    "#### __import__('os').system('true')", "#### eval('56')", "#### 56;", "#### 56 # comment",
    "#### " + "(" * 10_000 + "56" + ")" * 10_000,  # nesting far past the depth limit
    "#### " + "(" * (cd.MAX_DEPTH + 1) + "56" + ")" * (cd.MAX_DEPTH + 1),  # just past it
    "#### " + "9" * 10_000,  # a huge literal
    "#### " + "1" * (cd.MAX_DIGITS + 1) + "-" + "1" * (cd.MAX_DIGITS + 1) + "+56",
    "#### " + "1+" * 50_000 + "55",  # a 100,000-character line
    "x" * 1_000_000 + "\n#### (25+3)*",  # a megabyte of work, then a broken answer
]


@pytest.mark.parametrize("response", HOSTILE_NO_FORMAT)
def test_hostile_answers_graded_zero_quickly(response):
    assert timed(response) == NEITHER
    assert timed(response, fn=countdown_reward_use_all) == NEITHER


def test_depth_and_digit_limits_are_inclusive():
    deep = "#### " + "(" * cd.MAX_DEPTH + "(25+3)*2" + ")" * cd.MAX_DEPTH
    assert timed(deep) == NEITHER  # MAX_DEPTH + 1 levels
    ok = "#### " + "(" * (cd.MAX_DEPTH - 1) + "(25+3)*2" + ")" * (cd.MAX_DEPTH - 1)
    assert timed(ok) == BOTH
    big = 10 ** (cd.MAX_DIGITS - 1)
    assert timed(f"#### {big}-{big - 56}", {"nums": [big, big - 56, 1], "target": 56}) == BOTH


@pytest.mark.parametrize("response", [None, 56, b"#### (25+3)*2", ["#### (25+3)*2"], {"text": "x"}])
def test_junk_responses(response):
    assert timed(response) == NEITHER


def test_growing_chains_of_divisions_stay_fast():
    # Fractions with ~200-character inputs: the slowest exact arithmetic the length limit allows
    answer = "#### " + "/".join(["999999"] * 28)
    assert len(answer) - 4 <= cd.MAX_CHARS and timed(answer) == FORMAT_ONLY
    assert timed("#### " + "*".join(["999999"] * 28)) == FORMAT_ONLY


@pytest.mark.parametrize("record", [
    {"nums": ["25", "3", "2"], "target": 56}, {"nums": [25, 3, 2]}, {"nums": [25, 3], "target": "56"},
    {"nums": 25, "target": 56}, {"nums": [25, 3, 2], "target": 56, "use_all": "true"}, None, "record",
])
def test_malformed_record_raises(record):
    with pytest.raises(ValueError, match="countdown record"):
        countdown_reward("#### (25+3)*2", record)


def oracle(text: str) -> tuple[Fraction | None, list[int]] | None:
    """parse()'s expected answer, from Python's own parser on test-made text: only binary + - * / of
    int literals (no unary operators, no `**` or `//`), each at most MAX_DIGITS long."""
    if any(len(run) > cd.MAX_DIGITS for run in re.findall(r"[0-9]+", text)):
        return None
    try:
        tree = ast.parse(text.strip(" \t"), mode="eval").body
    except SyntaxError:
        return None
    numbers: list[int] = []

    def value(node) -> Fraction | None:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            numbers.append(node.value)
            return Fraction(node.value)
        if not (isinstance(node, ast.BinOp) and type(node.op) in ARITH):
            raise LookupError
        a, b = value(node.left), value(node.right)
        if a is None or b is None or (isinstance(node.op, ast.Div) and b == 0):
            return None
        return ARITH[type(node.op)](a, b)

    try:
        return value(tree), numbers
    except LookupError:
        return None


ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# No 0: Python refuses `01`, which the grammar reads as 1. At most 60 characters: at most 29 nested
# parentheses, inside the depth limit (the limit itself is tested above).
TEXT = st.text(alphabet="123456789+-*/() \t", max_size=60)
EXPR = st.recursive(
    st.integers(1, 999_999).map(str),
    lambda sub: st.tuples(sub, st.sampled_from(["+", "-", "*", "/", " - ", "**", "//"]), sub, st.booleans()).map(
        lambda t: f"({t[0]}{t[1]}{t[2]})" if t[3] else f"{t[0]}{t[1]}{t[2]}"),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(TEXT, EXPR))
def test_parse_agrees_with_an_independent_parser(text):
    assert cd.parse(text) == oracle(text)


@settings(max_examples=300, deadline=None)
@given(work=st.text(max_size=200), answer=st.text(alphabet="0123456789+-*/() \t#.٣３x", max_size=300))
def test_fuzz_never_raises_and_work_lines_are_not_graded(work, answer):
    alone = timed("#### " + answer)
    assert set(alone) == {"correct", "format"} and alone["correct"] <= alone["format"]
    assert timed(work + "\n#### " + answer) == alone
