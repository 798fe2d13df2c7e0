"""Who does which request, and which micro-batches each rank runs: pure functions, same on every rank; and
ShardedEngine's split over tensor-parallel groups, with ranks as threads."""

from __future__ import annotations

import threading

import pytest

from rlreason.distributed import SINGLE, Dist
from rlreason.distributed.engine import ShardedEngine
from rlreason.distributed.fsdp import micro_batches
from rlreason.distributed.shard import balanced, contiguous
from rlreason.engine.base import Completion, SamplingParams


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


class ThreadDist(Dist):
    """A Dist whose all_gather is a real exchange between threads (one per rank)."""

    def __init__(self, rank: int, world: int, board: list, barrier):
        super().__init__(rank=rank, world=world)
        self.board, self.barrier = board, barrier

    def all_gather(self, obj):
        self.board[self.rank] = obj
        self.barrier.wait()
        out = list(self.board)
        self.barrier.wait()  # nobody overwrites the board before everyone has read it
        return out


class EchoEngine:
    """Records what it was asked; answers each prompt with its own ids, tagged by the engine's rank."""

    version = 0

    def __init__(self, rank: int):
        self.rank, self.asked = rank, []

    def generate(self, prompts, params, version=None):
        self.asked.append([list(p) for p in prompts])
        return [[Completion(list(p), f"rank{self.rank}", [0.0] * len(p), "stop")] for p in prompts]


@pytest.mark.parametrize("world, tp", [(4, 2), (4, 1), (4, 4), (6, 3)])
def test_tensor_parallel_groups_send_the_same_requests_and_everyone_gets_all(world, tp):
    prompts = [[i, i + 1] for i in range(11)]
    params = [SamplingParams(max_tokens=1 + i % 3) for i in range(11)]
    board, barrier = [None] * world, threading.Barrier(world)
    engines = [EchoEngine(r) for r in range(world)]
    results = [None] * world

    def rank_main(r):
        results[r] = ShardedEngine(engines[r], ThreadDist(r, world, board, barrier), tp).generate(prompts, params)

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    groups = [engines[g * tp:(g + 1) * tp] for g in range(world // tp)]
    for group in groups:  # every rank of one engine was asked exactly the same thing
        assert all(e.asked == group[0].asked for e in group)
    sent = [p for group in groups for p in group[0].asked[0]]
    assert sent == prompts  # the engines split the requests: each once, contiguous, in order
    for r in range(world):  # every rank has every completion in request order
        assert [g[0].token_ids for g in results[r]] == prompts
        assert results[r] == results[0]
    assert {g[0].text for g in results[0]} <= {f"rank{g * tp}" for g in range(world // tp)}  # groups' first


def test_tensor_parallel_must_divide_the_world():
    with pytest.raises(ValueError, match="must divide"):
        ShardedEngine(EchoEngine(0), Dist(rank=0, world=4), 3)
