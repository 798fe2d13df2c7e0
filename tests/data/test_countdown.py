"""Countdown generator and solver, checked against a brute force written here independently.

The brute force combines any ordered pair of the current values with any of + - * / (any sign, exact
Fractions) until one value is left: sequential, where the solver splits multisets and keeps
intermediates non-negative, so agreeing is evidence for both the solver and its completeness claim.
"""

from __future__ import annotations

import itertools
import math
import operator
import random
import re
import time
from collections import Counter
from fractions import Fraction
from functools import cache

import pytest

from rlreason.data import countdown
from rlreason.data.countdown import (
    CountdownSpec,
    generate_splits,
    is_solvable,
    problem_text,
    record_error,
    solutions,
)
from rlreason.reward.countdown import countdown_reward, countdown_reward_use_all

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
LINE = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)")


@cache
def brute_values(state: tuple[Fraction, ...], integers: bool) -> frozenset[Fraction]:
    """Values of every expression using each element of `state` exactly once."""
    if len(state) == 1:
        return frozenset(state)
    out: set[Fraction] = set()
    for i, j in itertools.permutations(range(len(state)), 2):
        rest = [x for k, x in enumerate(state) if k not in (i, j)]
        for op, fn in OPS.items():
            if op == "/" and state[j] == 0:
                continue
            v = fn(state[i], state[j])
            if integers and v.denominator != 1:
                continue
            out |= brute_values(tuple(sorted([*rest, v])), integers)
    return frozenset(out)


def brute_solvable(nums, target, use_all=False, integers=False) -> bool:
    subsets = [nums] if use_all else [c for k in range(1, len(nums) + 1) for c in itertools.combinations(nums, k)]
    return any(Fraction(target) in brute_values(tuple(sorted(map(Fraction, s))), integers) for s in subsets)


def replay(lines: list[str], nums: list[int]) -> Counter:
    """The multiset left after applying the work lines to nums; each line's operands must be available
    and its arithmetic right."""
    pool = Counter(nums)
    for line in lines:
        m = LINE.fullmatch(line)
        assert m, line
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        assert OPS[op](Fraction(a), b) == c, line
        pool.subtract([a, b])
        assert min(pool.values()) >= 0, f"{line}: operand not available"
        pool[c] += 1
    return +pool


def graded(lines: list[str], expr: str, record: dict) -> dict[str, float]:
    return countdown_reward("\n".join([*lines, f"#### {expr}"]), record)


def test_deterministic_by_seed_and_test_split_stable():
    spec = CountdownSpec(3, 5)
    a = generate_splits(300, 60, spec, seed=7)
    assert a == generate_splits(300, 60, spec, seed=7)
    assert a != generate_splits(300, 60, spec, seed=8)
    assert generate_splits(500, 60, spec, seed=7)[1] == a[1]  # more training data keeps the test set


@pytest.mark.parametrize("use_all", [False, True])
def test_disjoint_in_range_and_not_trivial(use_all):
    spec = CountdownSpec(3, 4, max_num=20, max_target=150, use_all=use_all)
    train, test = generate_splits(1000, 200, spec, seed=1)
    key = lambda r: (tuple(sorted(r["nums"])), r["target"])  # noqa: E731
    assert (len(train), len(test)) == (1000, 200)
    assert len({key(r) for r in train + test}) == len(train) + len(test)  # no repeats, disjoint splits
    for r in train + test:
        assert record_error(r) is None
        assert all(1 <= n <= spec.max_num for n in r["nums"])
        assert 1 <= r["target"] <= spec.max_target and r["target"] not in r["nums"]
        assert r.get("use_all", False) is use_all


@pytest.mark.parametrize("use_all", [False, True])
def test_every_instance_solvable_by_brute_force_and_every_solution_checks(use_all):
    train, test = generate_splits(150, 30, CountdownSpec(3, 4, use_all=use_all), seed=2)
    for r in train + test:
        nums, target = r["nums"], r["target"]
        assert brute_solvable(nums, target, use_all, integers=True), r
        sols = solutions(nums, target, use_all=use_all)
        assert sols, r
        assert len({tuple(lines) for lines, _ in sols}) == len(sols)  # distinct
        for lines, expr in sols:
            left = replay(lines, nums)
            assert left[target] >= 1
            if use_all:
                assert left == Counter([target])
                assert countdown_reward_use_all("\n".join([*lines, f"#### {expr}"]), r)["correct"] == 1.0
            else:  # no detour through the target or 0 before the last line
                assert all(not line.endswith((f"={target}", "=0")) for line in lines[:-1])
            assert graded(lines, expr, r) == {"correct": 1.0, "format": 1.0}, (r, lines, expr)


def test_solver_agrees_with_brute_force_on_random_instances():
    """Solvable and unsolvable alike (small numbers and targets: both kinds are common there)."""
    rng = random.Random(0)
    seen = Counter()
    for _ in range(150):
        nums = [rng.randint(1, 13) for _ in range(rng.choice([3, 4]))]
        target, use_all = rng.randint(1, 80), rng.random() < 0.5
        for integers in (True, False):
            expected = brute_solvable(nums, target, use_all, integers)
            assert is_solvable(nums, target, use_all, rational=not integers) == expected, (nums, target, use_all)
            seen[expected] += 1
        assert bool(solutions(nums, target, use_all=use_all, limit=1)) == is_solvable(nums, target, use_all)
    assert seen[True] and seen[False]


def test_fractions_need_rational_mode():
    # 6/(1-3/4) is the only way to 24 with 1 3 4 6: no integer-only route, and the checker takes it
    record = {"nums": [1, 3, 4, 6], "target": 24, "use_all": True}
    assert not is_solvable(record["nums"], 24, use_all=True) and solutions(record["nums"], 24, use_all=True) == []
    assert is_solvable(record["nums"], 24, use_all=True, rational=True)
    assert brute_solvable(record["nums"], 24, use_all=True) and not brute_solvable(record["nums"], 24, True, True)
    assert countdown_reward("#### 6/(1-3/4)", record)["correct"] == 1.0


def test_counts_uniform():
    spec = CountdownSpec(3, 6)
    train, _ = generate_splits(800, 0, spec, seed=3)
    k = spec.max_nums - spec.min_nums + 1
    counts = Counter(len(r["nums"]) for r in train)
    mean, sd = len(train) / k, math.sqrt(len(train) * (1 / k) * (1 - 1 / k))
    assert set(counts) == set(range(spec.min_nums, spec.max_nums + 1))
    assert all(abs(c - mean) < 5 * sd for c in counts.values()), counts


def test_the_level_is_the_count_of_given_numbers_not_of_numbers_needed():
    """A target is a random tree's value over all the numbers, but fewer numbers can reach it too: of the
    default held-out split (500, seed 0) 38 of the 242 four-number instances (16%) and 9 of the 258
    three-number ones are solvable with fewer numbers (the default rule: at most once), so `level` (and the per-level
    metrics) is the count of given numbers, as rlreason/data/countdown.py says, not of numbers needed."""
    _, test = generate_splits(0, 500, CountdownSpec(), seed=0)
    given = Counter(len(r["nums"]) for r in test)
    fewer = Counter(len(r["nums"]) for r in test if any(
        is_solvable(sub, r["target"], use_all=True)
        for k in range(2, len(r["nums"])) for sub in itertools.combinations(r["nums"], k)))
    assert (given[4], fewer[4], given[3], fewer[3]) == (242, 38, 258, 9)


def test_several_solutions_for_most_four_number_instances():
    train, _ = generate_splits(300, 0, CountdownSpec(4, 4), seed=4)
    several = [len(solutions(r["nums"], r["target"], limit=2)) >= 2 for r in train]
    assert sum(several) > len(several) / 2


def test_commutative_steps_written_once():
    sols = solutions([2, 2, 2], 8)
    exprs = [e for _, e in sols]
    assert len(exprs) == len(set(exprs)) and set(exprs) == {"(2+2)*2", "2*2*2"}
    assert solutions([25, 3, 2], 56) == [(["25+3=28", "28*2=56"], "(25+3)*2")]


def test_use_all_absorbs_numbers_through_zero():
    # with every number required, 0 is a real intermediate: 0*7 and 0/7 use 7 up
    assert {e for _, e in solutions([5, 5, 7], 0, use_all=True)} == {"7*(5-5)", "(5-5)/7"}
    sols = solutions([5, 5, 7, 9], 9, use_all=True)
    assert {"9+7*(5-5)", "9-(5-5)/7"} <= {e for _, e in sols}
    for lines, expr in sols:
        assert replay(lines, [5, 5, 7, 9]) == Counter([9])
        assert countdown_reward_use_all(f"#### {expr}", {"nums": [5, 5, 7, 9], "target": 9})["correct"] == 1.0
    assert solutions([5, 5, 7, 9], 9) == [([], "9")]  # at most once: the number itself, nothing padded


def test_six_numbers_tractable():
    """The slowest case: no solution, so every split of every sub-multiset is searched, with fractions."""
    nums, target = [55, 93, 4, 68, 29, 98], 962
    for rational in (False, True):
        countdown._shared_values.cache_clear()  # cold, as for a first instance
        start = time.perf_counter()
        assert not is_solvable(nums, target, use_all=True, rational=rational)
        assert time.perf_counter() - start < 20.0  # ~1 s with fractions on a 2-core machine
    start = time.perf_counter()
    train, _ = generate_splits(20, 0, CountdownSpec(6, 6), seed=5)
    assert all(len(solutions(r["nums"], r["target"], limit=20)) >= 1 for r in train)
    assert time.perf_counter() - start < 20.0


@pytest.mark.parametrize("kwargs", [
    {"min_nums": 2}, {"max_nums": 7}, {"min_nums": 5, "max_nums": 4}, {"max_num": 0},
    {"max_num": countdown.MAX_NUM + 1}, {"max_target": 0}, {"use_all": "yes"},
])
def test_spec_validation(kwargs):
    with pytest.raises(ValueError, match="countdown"):
        CountdownSpec(**kwargs)


def test_narrow_spec_fails_clearly():
    with pytest.raises(ValueError, match="widen the spec"):
        generate_splits(500, 0, CountdownSpec(3, 3, max_num=2, max_target=10), seed=0)


def test_problem_text():
    assert problem_text({"nums": [25, 3, 2], "target": 56}) == "Q:25 3 2=56"


@pytest.mark.parametrize("record, fragment", [
    ([3, 4, 5], "dict"), ({"target": 5}, "missing nums"), ({"nums": [1, 2, 3]}, "missing target"),
    ({"nums": ["1", "2", "3"], "target": 5}, "list of ints"), ({"nums": [1, 2, True], "target": 5}, "list of ints"),
    ({"nums": [1, 2], "target": 5}, "numbers"), ({"nums": [1] * 7, "target": 5}, "numbers"),
    ({"nums": [0, 2, 3], "target": 5}, "1.."), ({"nums": [1, 2, 3], "target": 5.0}, "target"),
    ({"nums": [1, 2, 3], "target": 0}, "target"), ({"nums": [1, 2, 3], "target": 5, "use_all": "no"}, "use_all"),
])
def test_record_error(record, fragment):
    assert fragment in record_error(record)
    assert record_error({"nums": [44, 19, 35], "target": 98}) is None  # a Countdown-Tasks-3to4 row
