"""Who does which request, and which micro-batches each rank runs: pure functions, same on every rank."""

from __future__ import annotations

import pytest

from rlreason.dist import SINGLE, Dist
from rlreason.dist.fsdp import micro_batches
from rlreason.dist.shard import balanced, contiguous


@pytest.mark.parametrize("n, world", [(0, 2), (1, 2), (7, 2), (8, 3), (5, 8)])
def test_contiguous_covers_every_item_once_in_order(n, world):
    parts = [list(contiguous(n, r, world)) for r in range(world)]
    assert [i for p in parts for i in p] == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("world", [2, 3, 8])
def test_balanced_runs_are_contiguous_and_near_equal_in_cost(world):
    costs = [float((i * 37) % 11 + 1) * (10 if i % 9 == 0 else 1) for i in range(50)]
    runs = balanced(costs, world)
    assert [i for r in runs for i in r] == list(range(50))
    loads = [sum(costs[i] for i in r) for r in runs]
    # a contiguous cut is off the ideal by at most one request's cost on each side
    assert max(loads) - sum(costs) / world <= max(costs)
    # and far better than equal counts when the costs are skewed
    skewed = [100.0] * 5 + [1.0] * 45
    heavy = balanced(skewed, 2)
    assert abs(sum(skewed[i] for i in heavy[0]) - sum(skewed[i] for i in heavy[1])) <= 100


def test_balanced_with_nothing_to_do_gives_empty_runs():
    assert [list(r) for r in balanced([], 3)] == [[], [], []]
    assert [len(r) for r in balanced([0.0] * 4, 2)] == [2, 2]


@pytest.mark.parametrize("n, size, world", [(7, 2, 2), (16, 4, 2), (3, 4, 4), (1, 2, 2)])
def test_every_rank_runs_as_many_micro_batches_and_only_real_ones_count(n, size, world):
    items = list(range(n))
    per_rank = [micro_batches(items, size, Dist(rank=r, world=world)) for r in range(world)]
    assert len({len(m) for m in per_rank}) == 1  # FSDP: the same number of forward/backward passes
    real = [x for m in per_rank for chunk, ok in m if ok for x in chunk]
    assert real == items
    assert all(len(chunk) <= size and chunk for m in per_rank for chunk, _ in m)


def test_one_process_is_the_plain_chunking():
    assert micro_batches(list(range(5)), 2, SINGLE) == [([0, 1], True), ([2, 3], True), ([4], True)]
    assert SINGLE.all_gather(3) == [3] and SINGLE.broadcast("x") == "x" and SINGLE.sum([1.0]) == [1.0]
