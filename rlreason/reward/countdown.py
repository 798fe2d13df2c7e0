"""Countdown checker: a reward function with the user-reward signature (response, record) -> rewards.

    record   {"nums": [25, 3, 2], "target": 56}            (optional "use_all": true)
    response 25+3=28
             28*2=56
             #### (25+3)*2
    rewards  {"correct": 1.0, "format": 1.0}

The answer is the response's last line (trailing whitespace stripped), `#### EXPRESSION`; the lines above
it are the model's work and are not graded.

- format  1.0 when that line is `####` and an expression of the grammar below, whatever its value
          (`#### 1/0` is well-formed: format 1, correct 0);
- correct 1.0 when, in addition, its exact value equals the target and its numbers are a sub-multiset of
          the given ones (each at most once), or exactly them when the record says `"use_all": true`
          (countdown_reward_use_all forces that rule, for TinyZero's records, which lack the field).

Nothing here evaluates model text: no eval, exec, compile, ast or int() of unchecked text. The line goes
through three stages, each bounded before it starts:

1. cut: at most MAX_CHARS characters after `####` (a longer line is format 0 before it is scanned);
2. tokenize: a whitelist scan, one character at a time: runs of ASCII digits (a set of '0123456789', not
   str.isdigit, which takes '٣' and '３'; at most MAX_DIGITS: a longer number is never a given one), the
   operators + - * / and parentheses (at most MAX_DEPTH open at once), spaces and tabs. Anything else
   (letters, '.', '^', look-alike digits, a newline) is format 0; `**` is just two `*` tokens;
3. parse and evaluate, by recursive descent over
       expr   := term (("+" | "-") term)*
       term   := factor (("*" | "/") factor)*
       factor := NUMBER | "(" expr ")"
   computing exact Fractions as it goes (x / 0 gives no value rather than an exception). There is no
   unary minus or plus: Countdown has none, and `-3` is not a given number. The depth bound keeps the
   recursion at 3 * MAX_DEPTH Python frames, so 10,000 parentheses are refused at the scan, not by a
   RecursionError; with no exponent, 200 characters cannot build a number large enough to be slow.

A malformed record (nums not ints, target missing) raises ValueError: that is a data error to fix, not
a response to grade. Nothing a response contains raises.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

MAX_CHARS = 200  # after `####`: a 6-number answer of 2-digit numbers is ~20-30 characters
MAX_DEPTH = 32  # parentheses open at once: 6 numbers need at most 5
MAX_DIGITS = 6  # per literal: the given numbers have at most 6 digits (rlreason.data.countdown.MAX_NUM)
DIGITS = frozenset("0123456789")
OPERATORS = frozenset("+-*/()")
SPACES = frozenset(" \t")
ZERO = {"correct": 0.0, "format": 0.0}


class _Malformed(Exception):
    """The answer does not follow the grammar (format 0); never leaves this module."""


def tokenize(expr: str) -> list[int | str]:
    """Numbers (ints) and operator characters of `expr`, or _Malformed."""
    if len(expr) > MAX_CHARS:
        raise _Malformed
    tokens: list[int | str] = []
    depth, i = 0, 0
    while i < len(expr):
        c = expr[i]
        if c in DIGITS:
            j = i
            while j < len(expr) and expr[j] in DIGITS:
                j += 1
            if j - i > MAX_DIGITS:
                raise _Malformed
            tokens.append(int(expr[i:j]))  # ASCII digits only, at most MAX_DIGITS of them
            i = j
            continue
        if c in OPERATORS:
            depth += (c == "(") - (c == ")")
            if not 0 <= depth <= MAX_DEPTH:
                raise _Malformed
            tokens.append(c)
        elif c not in SPACES:
            raise _Malformed
        i += 1
    return tokens


class _Parser:
    """Recursive descent over the tokens; `numbers` collects the literals as they are read."""

    def __init__(self, tokens: list[int | str]):
        self.tokens, self.i, self.numbers = tokens, 0, []

    def peek(self) -> int | str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expr(self, depth: int) -> Fraction | None:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op = self.tokens[self.i]
            self.i += 1
            rhs = self.term(depth)
            if value is not None and rhs is not None:
                value = value + rhs if op == "+" else value - rhs
            else:
                value = None
        return value

    def term(self, depth: int) -> Fraction | None:
        value = self.factor(depth)
        while self.peek() in ("*", "/"):
            op = self.tokens[self.i]
            self.i += 1
            rhs = self.factor(depth)
            if value is None or rhs is None or (op == "/" and rhs == 0):
                value = None  # x / 0 has no value; the rest is still parsed, for `format`
            else:
                value = value * rhs if op == "*" else value / rhs
        return value

    def factor(self, depth: int) -> Fraction | None:
        tok = self.peek()
        if isinstance(tok, int):
            self.i += 1
            self.numbers.append(tok)
            return Fraction(tok)
        if tok == "(" and depth < MAX_DEPTH:  # the tokenizer already bounds the depth; this keeps it local
            self.i += 1
            value = self.expr(depth + 1)
            if self.peek() != ")":
                raise _Malformed
            self.i += 1
            return value
        raise _Malformed


def parse(expr: str) -> tuple[Fraction | None, list[int]] | None:
    """(exact value or None after a division by zero, the literals used) of an answer expression, or
    None when it is not one."""
    try:
        parser = _Parser(tokenize(expr))
        value = parser.expr(0)
        if parser.peek() is not None:  # tokens left over: `3 4`, `(1))`
            raise _Malformed
    except _Malformed:
        return None
    return value, parser.numbers


def answer_line(response: str) -> str | None:
    """The expression after `####` on the response's last line, or None when that line has no `####`
    at its start. Linear in the response: rstrip, rfind, one slice of the last line."""
    text = response.rstrip()
    line = text[text.rfind("\n") + 1 :].lstrip(" \t")
    return line[4:] if line.startswith("####") else None


def _record(record: dict) -> tuple[list[int], int, bool]:
    """The record's nums, target and use_all, or ValueError for a malformed record (a data error)."""
    if not isinstance(record, dict):
        raise ValueError(f"countdown record must be a dict, got {type(record).__name__}")
    nums, target = record.get("nums"), record.get("target")
    if not isinstance(nums, list | tuple) or not all(type(n) is int for n in nums):
        raise ValueError(f"countdown record: nums must be a list of ints, got {nums!r}")
    if type(target) is not int:
        raise ValueError(f"countdown record: target must be an int, got {target!r}")
    use_all = record.get("use_all", False)
    if not isinstance(use_all, bool):  # "false" would be truthy: refuse to guess the rule
        raise ValueError(f"countdown record: use_all must be a bool, got {use_all!r}")
    return list(nums), target, use_all


def _grade(response: object, record: dict, force_use_all: bool) -> dict[str, float]:
    nums, target, use_all = _record(record)
    use_all = use_all or force_use_all
    if not isinstance(response, str):
        return dict(ZERO)
    expr = answer_line(response)
    parsed = None if expr is None else parse(expr)
    if parsed is None:
        return dict(ZERO)
    value, used = parsed
    given, used_count = Counter(nums), Counter(used)
    numbers_ok = used_count == given if use_all else not (used_count - given)
    correct = value is not None and value == target and numbers_ok
    return {"correct": float(correct), "format": 1.0}


def countdown_reward(response: str, record: dict) -> dict[str, float]:
    """{"correct", "format"} for one response to one Countdown record (see the module doc); the record's
    own `use_all` (default false: each number at most once) decides the rule."""
    return _grade(response, record, force_use_all=False)


def countdown_reward_use_all(response: str, record: dict) -> dict[str, float]:
    """countdown_reward with every given number required exactly once (TinyZero's rule)."""
    return _grade(response, record, force_use_all=True)
