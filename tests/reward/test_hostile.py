"""Hostile model outputs: whatever a policy writes, grading returns a Verdict within its deadline, never
raises, never calls a wrong answer correct, and never runs the text as code.

The golds are chosen so every hostile text is wrong: a `correct` here is a grading bug. Look-alike
digits (fullwidth, Arabic-Indic, mathematical bold ...) are not the digits they resemble, on either
grading path (the in-process numeric one and math-verify).
"""

from __future__ import annotations

import math
import re
import time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlreason.reward import REASONS, Grader, Verdict, extract_answer

TIMEOUT_S = 0.5
# Dispatch, pickling a megabyte, killing and joining a worker that missed its deadline, on a loaded
# 2-core machine. A deadline that does not hold (sympy on a tower runs for minutes) exceeds it by far.
SLACK_S = 2.0
RESPAWN_S = 1.5  # starting a math-verify worker (imports sympy)
TASKS = ("arith", "gsm8k", "math")
GOLD = {"arith": "31337", "gsm8k": "31337", "math": "31337"}  # no hostile text below is worth 31337

TOWERS = [
    "\\boxed{9^{9^{9^{9^{9}}}}}", "\\boxed{2^{2^{2^{2^{2^{2^{2^{2}}}}}}}}", "#### 9^9^9^9^9",
    "The answer is 9**9**9**9", "\\boxed{e^{e^{e^{e^{e^{100}}}}}}",
]
FACTORIALS = [
    "\\boxed{100000!}", "\\boxed{(10^{100})!}", "#### 99999999999!", "\\boxed{1000!!!!}",
    "\\boxed{{9^{9^9}}!}",
]
BRACES = [
    "\\boxed{" + "{" * 50_000 + "1" + "}" * 50_000 + "}",
    "\\boxed{" + "\\frac{1}{" * 3000 + "2" + "}" * 3000 + "}",
    "\\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}",
    "\\boxed{" + "\\sqrt{" * 2000 + "2" + "}" * 2000 + "}",
    "\\boxed{" + "{" * 100_000,  # unclosed
    "\\boxed{1}}}}}}}}}}}}",
    "}}}}}{{{{{\\boxed{",
    "\\boxed{\\left( 1 }",
    "\\boxed{" + "}" * 100_000,
    "\\boxed" * 100_000,
    "\\fbox{\\boxed{\\fbox{\\boxed{" + "x" * 10 + "}}",
]
MEGABYTE = [
    "x" * 1_000_000 + "\\boxed{4}",
    "\\boxed{" + "1+" * 500_000 + "1}",
    "#### " + "9" * 1_000_000,
    "The final answer is " + "1" * 1_000_000,
    "\\boxed{" + "x" * 1_000_000 + "}",
    "\\boxed{" + "\\frac{1}{2}" * 100_000 + "}",
    ("step\n" * 200_000) + "#### 12",
]
CONTROL = [
    "\\boxed{1\x00}", "#### 7\x00\x01\x02", "\x00" * 1000, "\\boxed{\x1b[31m5\x1b[0m}", "#### \r5\r",
    "\\boxed{\u202e5}", "\\boxed{\ud800}", "#### \ud83d", "\\boxed{5\u200b}", "\ufeff#### 5",
    "".join(chr(i) for i in range(32)) + "\\boxed{" + "".join(chr(i) for i in range(32)) + "}",
    "#### \x7f\x85\u2028\u2029",
]
# Look-alikes of "7": each must be wrong against the ASCII gold 7.
LOOKALIKE_7 = ["７", "٧", "۷", "७", "𝟕", "𝟳", "⁷", "₇", "⑦", "7\u0336", "7\u200b", "\u202e7", "Ⅶ", "7\x00"]
LOOKALIKE_100 = ["1OO", "l00", "１００", "1\u00a000", "100\u0301", "I00"]


def code_payloads(marker: str) -> list[str]:
    """Text that is Python (or would be, to sympy's parse_expr / eval): it must stay text."""
    return [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w').write('pwned')",
        f"exec(\"open('{marker}','w')\")",
        f"eval(\"__import__('os').system('touch {marker}')\")",
        f"(lambda: __import__('os').system('touch {marker}'))()",
        f"__import__('pathlib').Path('{marker}').touch()",
        f"().__class__.__base__.__subclasses__()[0]; open('{marker}','w')",
        f"compile(\"open('{marker}','w')\", 's', 'exec')",
        f"Symbol('x').__class__.__init__.__globals__['__builtins__']['open']('{marker}','w')",
        f"$__import__('os').system('touch {marker}')$",
        f"\\text{{__import__('os').system('touch {marker}')}}",
    ]


def wrap(payload: str) -> list[str]:
    """A payload at every place a task's extractor reads an answer from."""
    return [f"\\boxed{{{payload}}}", f"#### {payload}", f"The final answer is {payload}", payload,
            f"so $\\boxed{{{payload}}}$.\n#### {payload}"]


def check(verdicts: list[Verdict], n: int) -> None:
    assert len(verdicts) == n
    for v in verdicts:
        assert isinstance(v, Verdict) and v.reason in REASONS
        assert v.reward == (1.0 if v.reason == "correct" else 0.0)


def warm(g: Grader) -> None:
    """Start the math-verify workers outside the timed call (their start-up is no grading time)."""
    if g.task != "arith":
        g.grade(["\\boxed{\\frac{1}{3}}", "\\boxed{\\frac{1}{5}}"], ["\\frac{2}{6}", "\\frac{2}{10}"])


def timed(g: Grader, texts: list[str], golds: list[str]) -> tuple[list[Verdict], float]:
    warm(g)
    start = time.perf_counter()
    verdicts = g.grade(texts, golds)
    return verdicts, time.perf_counter() - start


def budget(n_slow: int, workers: int = 2) -> float:
    return math.ceil(n_slow / workers) * TIMEOUT_S + SLACK_S


@pytest.fixture(scope="module")
def graders():
    gs = {task: Grader(task, timeout_s=TIMEOUT_S, workers=2) for task in TASKS}
    yield gs
    for g in gs.values():
        g.close()


@pytest.fixture(scope="module")
def arith():
    with Grader("arith", timeout_s=TIMEOUT_S, workers=2) as g:
        yield g


CASES = [(kind, i, text) for kind, texts in (("tower", TOWERS), ("factorial", FACTORIALS), ("braces", BRACES),
                                            ("megabyte", MEGABYTE), ("control", CONTROL)) for i, text in enumerate(texts)]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("kind", "i", "text"), CASES, ids=[f"{k}{i}" for k, i, _ in CASES])
def test_nasty_case_is_wrong_within_deadline(graders, task, kind, i, text):
    g = graders[task]
    (verdict,), elapsed = timed(g, [text], [GOLD[task]])
    check([verdict], 1)
    assert verdict.reason != "correct", (task, kind, i, verdict)
    assert elapsed < budget(1), f"{task} {kind}{i}: {elapsed:.2f} s for one verdict (deadline {TIMEOUT_S} s)"
    if task == "arith":
        assert g._pool._workers == []  # arith never starts math-verify, whatever the text


def test_hanging_batch_holds_its_deadlines(graders):
    """Hanging items in one call: each holds only its worker, for its deadline; a killed worker is
    replaced (a spawn: RESPAWN_S) while the other keeps grading."""
    g = graders["math"]
    texts = TOWERS + ["\\boxed{\\frac{2}{4}}"]
    verdicts, elapsed = timed(g, texts, [GOLD["math"]] * len(TOWERS) + ["\\frac12"])
    check(verdicts, len(texts))
    assert [v.reason for v in verdicts[:-1]].count("correct") == 0 and verdicts[-1].reason == "correct"
    hung = sum(v.reason == "timeout" for v in verdicts)
    assert hung >= 2  # the towers do hang sympy: without the deadline this call would not return
    assert elapsed < math.ceil(hung / 2) * (TIMEOUT_S + RESPAWN_S) + SLACK_S, (hung, elapsed)
    print(f"{len(texts)} texts, {hung} timeouts, {elapsed:.1f} s")


@pytest.mark.parametrize("task", TASKS)
def test_lookalike_digits_are_not_digits(graders, task):
    g = graders[task]
    texts = [w for c in LOOKALIKE_7 for w in (f"\\boxed{{{c}}}", f"#### {c}")]
    texts += [w for c in LOOKALIKE_100 for w in (f"\\boxed{{{c}}}", f"#### {c}")]
    golds = ["7"] * (2 * len(LOOKALIKE_7)) + ["100"] * (2 * len(LOOKALIKE_100))
    verdicts, elapsed = timed(g, texts, golds)
    check(verdicts, len(texts))
    assert [t for t, v in zip(texts, verdicts) if v.reason == "correct"] == []
    # ... while the ASCII answers are right on both paths (the test is not vacuous)
    ok = g.grade(["\\boxed{7}", "#### 7", "#### 100", "\\boxed{1,00}" if task == "arith" else "\\boxed{100}"],
                 ["7", "7", "100", "100"])
    assert [v.reason for v in ok] == ["correct"] * 4


@pytest.mark.parametrize("task", TASKS)
def test_model_text_is_never_run_as_code(graders, task, tmp_path):
    marker = tmp_path / "pwned"
    texts = [w for p in code_payloads(str(marker)) for w in wrap(p)]
    verdicts, elapsed = timed(graders[task], texts, [GOLD[task]] * len(texts))
    check(verdicts, len(texts))
    assert not [t for t, v in zip(texts, verdicts) if v.reason == "correct"]
    assert not marker.exists(), "model text was executed"
    # the same strings as golds (a poisoned dataset) are no more executable
    verdicts = graders[task].grade(["\\boxed{1}"] * len(texts), texts)
    check(verdicts, len(texts))
    assert not marker.exists(), "gold text was executed"


# --- fuzz -------------------------------------------------------------------------------------------

TOKENS = ["\\boxed{", "\\fbox{", "{", "}", "####", "#### ", "The answer is ", "final answer: ", "\n", "$", "\\$",
          "^", "!", "9", "1", "0", "-", ".", ",", " ", "\\frac", "\\sqrt", "\\left(", "\\right)", "(", ")", "x",
          "\x00", "\x1b", "７", "٧", "𝟕", "\u202e", "\ud800", "__import__('os')", "eval(", "\\text{", "e", "+"]
hostile_text = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=30).map("".join)
_PLAIN = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def oracle_plain_number(answer: str | None) -> Decimal | None:
    """What the numeric fast path is specified to accept: an ASCII decimal once , $ \\$ and spaces go."""
    if answer is None:
        return None
    s = answer.replace(",", "").replace("\\$", "").replace("$", "").replace(" ", "")
    return Decimal(s) if len(s) <= 64 and _PLAIN.fullmatch(s) else None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(hostile_text, min_size=1, max_size=8), gold=st.integers(-1000, 10**6))
def test_fuzz_numeric_path_is_exact(arith, texts, gold):
    """arith: never math-verify; correct exactly when the extracted answer is the gold as a plain number."""
    g = arith
    start = time.perf_counter()
    verdicts = g.grade(texts, [str(gold)] * len(texts))
    assert time.perf_counter() - start < 0.5
    check(verdicts, len(texts))
    for text, v in zip(texts, verdicts):
        expected = oracle_plain_number(extract_answer(text, "arith")) == gold
        assert (v.reason == "correct") == expected, (text, v)
    assert g._pool._workers == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text, task=st.sampled_from(["gsm8k", "math"]))
def test_fuzz_math_verify_path(graders, text, task, tmp_path_factory):
    """gsm8k/math: hostile text through the math-verify pool is wrong (the gold is out of its reach),
    within the deadline, and never raises."""
    gold = "982451653" if task == "gsm8k" else "\\sqrt{2}+\\pi"
    g = graders[task]
    (v,), elapsed = timed(g, [text], [gold])
    check([v], 1)
    assert v.reason != "correct", (text, v)
    assert elapsed < budget(1), (text, elapsed)
