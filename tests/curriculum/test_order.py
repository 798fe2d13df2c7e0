"""The two question orders: epochs without replacement (default) and a fresh subset per iteration."""

import random
from collections import Counter

import pytest

from rlreason.curriculum import StatsStore, make_sampler
from rlreason.curriculum.order import EpochOrder, FreshOrder
from tests.curriculum.fakes import FakePolicy, cfg, questions, step


def fresh_batch(n: int, seed: int, iteration: int, k: int) -> list[int]:
    order = FreshOrder(n, seed)
    order.begin(iteration)
    return order.take(k)


def test_fresh_order_has_no_duplicates_within_an_iteration():
    order = FreshOrder(10, seed=3)
    order.begin(4)
    first = order.take(4)
    second = order.take(4, exclude=[0])  # a second take in the same iteration (a refill) continues it
    drawn = first + second
    assert len(drawn) == len(set(drawn)) == 8 and 0 not in second
    assert sorted(drawn + order.take(5)) == list(range(10))  # then only what is left: each index once
    assert order.take(1) == []


def test_fresh_order_draws_each_iteration_afresh():
    batches = [fresh_batch(10, 0, it, 3) for it in range(200)]
    assert all(len(set(b)) == 3 for b in batches)
    # within the first 3 iterations (9 of 10 questions) an epoch order never repeats; a fresh draw does
    assert len(set(batches[0] + batches[1] + batches[2])) < 9
    epoch = EpochOrder(10, 0)
    assert len(set(epoch.take(3) + epoch.take(3) + epoch.take(3))) == 9
    # every question equally likely each iteration: 200 x 3 / 10 = 60 expected draws each
    counts = Counter(i for b in batches for i in b)
    assert set(counts) == set(range(10)) and all(35 <= c <= 85 for c in counts.values())


def test_fresh_order_depends_on_seed_and_iteration_only():
    order = FreshOrder(50, seed=1)
    in_sequence = {}
    for it in range(1, 8):
        order.begin(it)
        in_sequence[it] = order.take(5)
    assert fresh_batch(50, 1, 6, 5) == in_sequence[6]  # a resumed iteration draws the same batch
    assert fresh_batch(50, 2, 6, 5) != in_sequence[6]  # another seed, another batch
    assert len({tuple(b) for b in in_sequence.values()}) == 7


def test_fresh_order_needs_begin_and_matching_state():
    with pytest.raises(RuntimeError, match="begin"):
        FreshOrder(5, 0).take(1)
    with pytest.raises(ValueError, match="with_replacement"):
        FreshOrder(5, 0).load_state_dict(EpochOrder(5, 0).state_dict())
    with pytest.raises(ValueError, match="with_replacement"):
        EpochOrder(5, 0).load_state_dict(FreshOrder(5, 0).state_dict())


@pytest.fixture
def store(tmp_path):
    with StatsStore(tmp_path / "stats.sqlite", "run") as s:
        yield s


def test_default_walks_epochs(store):
    assert cfg("uniform").with_replacement is False
    sampler = make_sampler(cfg("uniform"), questions(10), store, seed=0)
    assert isinstance(sampler.order, EpochOrder)


@pytest.mark.parametrize("name", ["uniform", "learnability", "sfl", "learnability_history", "skip_zero_variance",
                                  "filter_groups"])
def test_every_curriculum_draws_afresh_with_replacement(tmp_path, name):
    qs = questions(12)
    rng = random.Random(0)
    policy = FakePolicy({q.id: rng.choice([0.0, 0.5, 1.0]) for q in qs})
    c = cfg(name, with_replacement=True, pool_factor=2, n_select=4, window=3, skip_prob=1.0, n_candidates=8,
            buffer_size=4, refresh_every=3)
    with StatsStore(tmp_path / "a.sqlite", "run") as store:
        sampler = make_sampler(c, qs, store, seed=5)
        assert isinstance(sampler.order, FreshOrder)
        batches = [step(sampler, store, it, policy, batch=5, n_train=4) for it in range(1, 9)]
    assert all(len(b) == len(set(b)) == 5 for b in batches)  # full batches, no question twice
    # across iterations questions recur before all 12 were seen (an epoch order would not repeat in 2)
    assert any(set(a) & set(b) for a, b in zip(batches, batches[1:]))
    if name == "uniform":  # exactly the head of the (seed, iteration) permutation, as the reference
        assert batches[3] == [qs[i].id for i in fresh_batch(12, 5, 4, 5)]
