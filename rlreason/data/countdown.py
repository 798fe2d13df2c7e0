"""Countdown: reach a target from a few given numbers with + - * / and parentheses.

    record   {"nums": [25, 3, 2], "target": 56}
    prompt   Q:25 3 2=56
    solution 25+3=28
             28*2=56
             #### (25+3)*2

Each given number may be used at most once (the classic rule) or, with `use_all` (TinyZero's rule and
its Countdown-Tasks-3to4 records), exactly once. The answer is the last line, `#### EXPRESSION`; the
work lines above it are not graded (rlreason.reward.countdown is the checker).

The solver works on multisets of values, never on text. V(S), the values reachable using every number
of the multiset S exactly once, is the union over splits S = A + B of a op b for a in V(A), b in V(B);
small multisets are memoised across calls, larger ones within a call. Whether t is in V(S) is asked
without building V(S): for a split and each a in V(A), the few b with a op b = t are looked up in V(B).
Intermediate values are non-negative: |x| of any tree's value is reachable with non-negative
intermediates (by induction: |a+b| is |a|+|b| or a difference of the two, |a*b| = |a|*|b| ...), so this
loses nothing. By default they are integers too (the work lines then stay integers); `rational=True`
allows any exact fraction, which is what the checker accepts (6/(1-3/4) = 24 needs it).

A record's level is the count of its given numbers, not of the numbers a solution needs: targets are the
values of random trees over all the drawn numbers, but fewer numbers often reach them too (of the default
held-out split, 38 of the 242 four-number instances, 16%, and 9 of the 258 three-number ones; such
targets are kept, so the questions stay as generated: tests/data/test_countdown.py counts them).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

MIN_NUMS, MAX_NUMS = 3, 6
MAX_NUM = 999_999  # the checker reads literals of at most 6 digits: a larger given number could not be written
_SHARED = 3  # multisets up to this size are memoised across calls (there are few; larger ones are rarely seen twice)

Value = int | Fraction
Tree = int | tuple  # a leaf (a given number) or (value, op, left, right)


@dataclass(frozen=True)
class CountdownSpec:
    min_nums: int = 3
    max_nums: int = 4
    max_num: int = 99  # numbers are drawn from 1..max_num (TinyZero: 1..99)
    max_target: int = 999  # targets 1..max_target: at most 3 digits to read, as in the TV game and TinyZero
    use_all: bool = False  # every number exactly once (TinyZero) instead of at most once

    def __post_init__(self) -> None:
        if not MIN_NUMS <= self.min_nums <= self.max_nums <= MAX_NUMS:
            raise ValueError(f"countdown: need {MIN_NUMS} <= min_nums <= max_nums <= {MAX_NUMS}, "
                             f"got {self.min_nums}..{self.max_nums}")
        if not 1 <= self.max_num <= MAX_NUM:
            raise ValueError(f"countdown: max_num must be in 1..{MAX_NUM}, got {self.max_num}")
        if self.max_target < 1:
            raise ValueError(f"countdown: max_target must be >= 1, got {self.max_target}")
        if not isinstance(self.use_all, bool):
            raise ValueError(f"countdown: use_all must be a bool, got {self.use_all!r}")


@lru_cache(maxsize=1 << 14)
def _splits(ms: tuple) -> tuple[tuple[tuple, tuple], ...]:
    """The distinct unordered splits of a sorted multiset into two non-empty parts, balanced ones first
    (they need only small, cheap value sets, so a solvable instance is usually settled before any large
    set is built)."""
    n, seen, out = len(ms), set(), []
    for mask in range(1, 1 << (n - 1)):  # the last element always in b: each unordered split once
        a = tuple(ms[i] for i in range(n) if mask >> i & 1)
        b = tuple(ms[i] for i in range(n) if not mask >> i & 1)
        if (a, b) not in seen and (b, a) not in seen:
            seen.add((a, b))
            out.append((a, b))
    out.sort(key=lambda ab: max(len(ab[0]), len(ab[1])))
    return tuple(out)


def _div(a: Value, b: Value, rational: bool) -> Value | None:
    """a / b when the mode allows it (b != 0; exact in integers unless rational), else None."""
    if b == 0:
        return None
    if rational:
        return Fraction(a) / b
    return a // b if a % b == 0 else None


@lru_cache(maxsize=1 << 13)
def _shared_values(ms: tuple, rational: bool) -> frozenset:
    return _build(ms, rational, {})


def _values(ms: tuple, rational: bool, memo: dict) -> frozenset:
    """V(ms): every value reachable using each element of the multiset exactly once."""
    if len(ms) <= _SHARED:
        return _shared_values(ms, rational)
    key = (ms, rational)
    if key not in memo:
        memo[key] = _build(ms, rational, memo)
    return memo[key]


def _build(ms: tuple, rational: bool, memo: dict) -> frozenset:
    if len(ms) == 1:
        return frozenset(ms)
    out: set = set()
    add = out.add
    for a_ms, b_ms in _splits(ms):
        vb = _values(b_ms, rational, memo)
        for a in _values(a_ms, rational, memo):
            for b in vb:  # the hot loop: inlined rather than calling _div
                add(a + b)
                add(a * b)
                add(a - b if a >= b else b - a)
                if rational:
                    if b:
                        add(Fraction(a) / b)
                    if a:
                        add(Fraction(b) / a)
                else:
                    if b and a % b == 0:
                        add(a // b)
                    if a and b % a == 0:
                        add(b // a)
    return frozenset(out)


def _ways(t: Value, va: frozenset, vb: frozenset, rational: bool) -> Iterator[tuple[Value, str, Value, bool]]:
    """(a, op, b, a_left) with a in va, b in vb and (a op b if a_left else b op a) == t, for the
    operations _build applies (x - y only with x >= y; x / y only for y != 0, exact unless rational)."""
    for a in va:
        cands: list[tuple[Value | None, str, bool]] = [(t - a, "+", True), (a - t, "-", True), (t + a, "-", False)]
        if a:
            cands += [(_div(t, a, rational), "*", True), (t * a, "/", False)]
        if t:
            q = _div(a, t, rational)
            cands.append((q if q else None, "/", True))
        for b, op, a_left in cands:
            if b is not None and b >= 0 and b in vb:
                yield a, op, b, a_left
        if a == 0 and t == 0:  # 0 * b and 0 / b are 0 for every (non-zero) b
            yield from ((a, op, b, True) for b in vb for op in "*/" if b or op == "*")


def _reach(ms: tuple, t: Value, rational: bool, memo: dict) -> bool:
    """t in V(ms), without building V(ms) itself."""
    if len(ms) <= _SHARED:
        return t in _values(ms, rational, memo)
    for a_ms, b_ms in _splits(ms):
        va, vb = _values(a_ms, rational, memo), _values(b_ms, rational, memo)
        if len(va) > len(vb):
            va, vb = vb, va
        if next(_ways(t, va, vb, rational), None) is not None:
            return True
    return False


def _submultisets(ms: tuple) -> list[tuple]:
    """Distinct non-empty sub-multisets, smallest first."""
    return sorted({c for k in range(1, len(ms) + 1) for c in itertools.combinations(ms, k)},
                  key=lambda c: (len(c), c))


def _check(nums: Sequence[int], target: int) -> tuple:
    if not 1 <= len(nums) <= MAX_NUMS:
        raise ValueError(f"countdown: 1..{MAX_NUMS} numbers, got {len(nums)}")
    if any(type(x) is not int or x < 0 for x in (*nums, target)):
        raise ValueError(f"countdown: numbers and target must be non-negative ints, got {list(nums)}, {target!r}")
    return tuple(sorted(nums))


def is_solvable(nums: Sequence[int], target: int, use_all: bool = False, *, rational: bool = False) -> bool:
    """Whether some expression over `nums` (each at most once, or exactly once with use_all) equals
    `target`, with integer intermediates (any exact fraction with rational=True)."""
    ms, memo = _check(nums, target), {}
    if use_all:
        return _reach(ms, target, rational, memo)
    return any(_reach(s, target, rational, memo) for s in _submultisets(ms))


def _derive(ms: tuple, t: int, avoid: tuple, memo: dict) -> Iterator[Tree]:
    """Every tree over exactly the multiset ms with value t, no sub-tree valued in `avoid`."""
    if len(ms) == 1:
        if ms[0] == t:
            yield t
        return
    for a_ms, b_ms in _splits(ms):
        va, vb = _values(a_ms, False, memo), _values(b_ms, False, memo)
        for a, op, b, a_left in _ways(t, va, vb, False):
            if a in avoid or b in avoid:
                continue
            right_side = list(_derive(b_ms, b, avoid, memo))  # one side listed, the other walked lazily
            for ta in _derive(a_ms, a, avoid, memo) if right_side else ():
                for tb in right_side:
                    yield _node(t, op, ta, tb) if a_left else _node(t, op, tb, ta)


def _node(t: int, op: str, left: Tree, right: Tree) -> Tree:
    if op in "+*" and (_value(left), _expr(left)) < (_value(right), _expr(right)):
        left, right = right, left  # one orientation per commutative step: larger first
    return (t, op, left, right)


def _value(tree: Tree) -> int:
    return tree if isinstance(tree, int) else tree[0]


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def _expr(tree: Tree) -> str:
    """The tree's expression, parenthesised only where precedence and left-to-right reading need it, so
    it parses back to the same tree: (25+3)*2, 9-(4-1), 8/(2*2)."""
    if isinstance(tree, int):
        return str(tree)
    _, op, left, right = tree
    ls, rs = _expr(left), _expr(right)
    if not isinstance(left, int) and _PREC[left[1]] < _PREC[op]:
        ls = f"({ls})"
    if not isinstance(right, int) and _PREC[right[1]] <= _PREC[op]:
        rs = f"({rs})"
    return f"{ls}{op}{rs}"


def _lines(tree: Tree) -> list[str]:
    """One line per operation, operands before their use: 25+3=28 then 28*2=56."""
    if isinstance(tree, int):
        return []
    value, op, left, right = tree
    return _lines(left) + _lines(right) + [f"{_value(left)}{op}{_value(right)}={value}"]


def solutions(nums: Sequence[int], target: int, *, use_all: bool = False,
              limit: int | None = None) -> list[tuple[list[str], str]]:
    """Distinct solutions as (work lines, final expression), integer intermediates, fewest numbers first.

    Distinct means different work lines: (a+b)+c and a+(b+c) differ (different first steps, a real
    choice for a policy); a+b and b+a do not (commutative steps are written larger operand first).
    Without use_all, a solution never passes through the target or 0 before its last step (such detours
    only pad a shorter solution). With limit, enumeration stops there: 6 numbers can have thousands.
    """
    ms, memo = _check(nums, target), {}
    avoid = () if use_all else (target, 0)
    out, seen = [], set()
    for sub in [ms] if use_all else _submultisets(ms):
        if not _reach(sub, target, False, memo):
            continue
        for tree in _derive(sub, target, avoid, memo):
            lines = _lines(tree)
            if tuple(lines) not in seen:
                seen.add(tuple(lines))
                out.append((lines, _expr(tree)))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def _random_target(rng: random.Random, nums: list[int]) -> int:
    """The value of a random tree over all of nums (random pair, random operation with a positive
    integer result), so every count of numbers has targets that need all of them."""
    pool = list(nums)
    while len(pool) > 1:
        i, j = sorted(rng.sample(range(len(pool)), 2))
        b, a = sorted((pool.pop(j), pool.pop(i)))
        options = [a + b, a * b] + ([a - b] if a != b else []) + ([a // b] if a % b == 0 else [])
        pool.append(rng.choice(options))
    return pool[0]


def _draw(rng: random.Random, spec: CountdownSpec, n: int) -> dict | None:
    nums = [rng.randint(1, spec.max_num) for _ in range(n)]
    target = _random_target(rng, nums)
    if not 1 <= target <= spec.max_target or target in nums:  # out of range, or trivial
        return None
    return {"nums": nums, "target": target} | ({"use_all": True} if spec.use_all else {})


def generate_splits(n_train: int, n_test: int, spec: CountdownSpec = CountdownSpec(),
                    seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Disjoint (by sorted nums + target) train/test records, deterministic in (sizes, spec, seed), each
    checked solvable by the solver under spec's rule. The count of numbers is uniform over
    min_nums..max_nums: it is drawn first and kept until an instance with that count is accepted (more
    numbers overshoot max_target more often; redrawing the count would make them rarer).

    The test split is drawn first, so growing `n_train` never changes the test set. Records carry
    `"use_all": True` when the spec asks for it, so the checker applies the rule from the record.
    """
    rng = random.Random(f"countdown-{seed}-{spec}")
    seen: set[tuple] = set()

    def draw_unique(count: int) -> list[dict]:
        out: list[dict] = []
        tries = 0
        n = rng.randint(spec.min_nums, spec.max_nums)
        while len(out) < count:
            tries += 1
            if tries > 100 * count + 1000:
                raise ValueError(f"countdown: cannot draw {count} distinct instances from {spec}; widen the spec")
            rec = _draw(rng, spec, n)
            if rec is None:
                continue
            key = (tuple(sorted(rec["nums"])), rec["target"])
            if key in seen:
                continue
            if not is_solvable(rec["nums"], rec["target"], spec.use_all):  # a solver or generator bug
                raise RuntimeError(f"countdown: generated an instance the solver cannot solve: {rec}")
            seen.add(key)
            out.append(rec)
            n = rng.randint(spec.min_nums, spec.max_nums)
        return out

    test = draw_unique(n_test)
    train = draw_unique(n_train)
    return train, test


def problem_text(record: dict) -> str:
    """The question a model reads: `Q:25 3 2=56`.

    Short, because a tiny character-level model reads it one character per position: the house `Q:`
    prefix (as arith), the numbers in record order separated by single spaces, then `=` and the target
    ("make these equal 56"). It uses no character an answer does not also use (digits, space, `=`), so
    the vocabulary stays digits, `+-*/()= `, `Q:`, `#` and newline.
    """
    return "Q:" + " ".join(str(n) for n in record["nums"]) + f"={record['target']}"


def record_error(record: object) -> str | None:
    """What is wrong with a record, or None: loaders call it to fail clearly, naming the row."""
    if not isinstance(record, dict):
        return f"expected a dict with nums and target, got {type(record).__name__}"
    nums, target = record.get("nums"), record.get("target")
    if nums is None or target is None:
        return f"missing {'nums' if nums is None else 'target'}"
    if not isinstance(nums, list | tuple) or not all(type(n) is int for n in nums):
        return f"nums must be a list of ints, got {nums!r}"
    if not MIN_NUMS <= len(nums) <= MAX_NUMS:
        return f"nums must have {MIN_NUMS}..{MAX_NUMS} numbers, got {len(nums)}"
    if not all(1 <= n <= MAX_NUM for n in nums):
        return f"nums must be in 1..{MAX_NUM} (the checker reads at most 6 digits), got {nums}"
    if type(target) is not int or target < 1:
        return f"target must be a positive int, got {target!r}"
    if not isinstance(record.get("use_all", False), bool):
        return f"use_all must be a bool, got {record['use_all']!r}"
    return None
