"""trainer.async_level=1 under torchrun: the producer's thread (selection, rollouts, grading, MC) makes its
collectives over a gloo group of its own (`Dist.producer`) while the learner's run on the first group and
FSDP's on the default one, so every rank runs the same schedule.

Two ranks one step off against one process one step off, same seed and global batch, after a kill -9 and a
resume: the same selections, stats rows, advantages and weights, `async/staleness` 0 then 1, every
iteration logged once. Then the two-threads-two-groups property on its own, with plain gloo processes, and
the refusal of a tensor-parallel engine one step off.

The first test takes ~5 min on a busy 2-core machine (one process, then two torchrun launches); the
others ~15 s each."""

from __future__ import annotations

import os
import random
import threading
import time
from types import SimpleNamespace

import pytest
import torch.multiprocessing as mp
from safetensors.torch import load_file

from rlreason.config import ConfigError
from rlreason.distributed import SINGLE, Dist, free_port
from rlreason.distributed.checkpoint import full_state_dict
from rlreason.trainer.loop import train
from rlreason.validate import tensor_parallel_problems
from tests.distributed.test_torchrun import (
    OVERRIDES,
    ROOT,
    WEIGHT_ATOL,
    attempts,
    metrics,
    selections,
    torchrun,
)
from tests.trainer import conftest as trainer_conftest
from tests.trainer.conftest import SMALL

make_cfg = trainer_conftest.make_cfg  # the fixture composing the real config tree (tests/trainer)
ASYNC = [*OVERRIDES, "trainer.async_level=1"]


@pytest.mark.slow
@pytest.mark.vllm
def test_two_ranks_one_step_off_match_one_process_and_resume_after_a_kill(make_cfg, vllm_engine, tmp_path):
    cache, one, two = tmp_path / "cache", tmp_path / "one", tmp_path / "two"
    train(make_cfg(*ASYNC[len(SMALL):], "trainer.iterations=3"), one, engine=vllm_engine)

    # Rank 1 dies in iteration 3's MC phase: one step off that is on its producer's thread, during
    # iteration 2's update, while rank 0 is inside a collective of either group.
    proc, _ = torchrun(two, 3, cache, kill="1:3", overrides=ASYNC)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert (two / "checkpoints" / "iter_000001" / "behaviour.safetensors").is_file()
    assert not (two / "checkpoints" / "iter_000002").exists()
    assert sorted(metrics(two)) == [0, 1]

    # The same command resumes from iteration 1, regenerating batch 2 under the weights that sampled it.
    proc, _ = torchrun(two, 3, cache, overrides=ASYNC)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Resuming" in out and "(iteration 1)" in out

    # -- every iteration logged once (metrics() asserts it), each the one process's
    m1, m2 = metrics(one), metrics(two)
    assert sorted(m2) == sorted(m1) == [0, 1, 2, 3]
    assert [m2[it]["async/staleness"] for it in (1, 2, 3)] == [0.0, 1.0, 1.0]  # rank 0's metrics.jsonl
    assert attempts(two, 3) == attempts(one, 3)  # every attempt once, by rank 0, in the same order
    assert selections(two) == selections(one)  # the same pools and the same top-k
    for it in (1, 2, 3):
        for key in ("train/reward", "adv/mean", "adv/abs_mean", "mc/unique_states", "mc/value_mean",
                    "async/staleness"):
            assert m2[it][key] == pytest.approx(m1[it][key], abs=1e-9), (it, key)
        for key in ("learner/pg_loss", "learner/kl_ref", "learner/grad_norm", "async/logprob_gap"):
            assert m2[it][key] == pytest.approx(m1[it][key], rel=1e-4, abs=1e-7), (it, key)

    # -- the weights after 3 iterations (6 Adam steps): float-sum order apart, the single process's.
    # Measured: 1.2e-7 (the weights moved 1.8e-4), on a layer norm weight of 1.01: one float32 step (ulp) at
    # that size; WEIGHT_ATOL is 4 of them. grad_norm agreed to 1e-5 relative.
    full = full_state_dict(two / "checkpoints" / "iter_000003")["model"]
    single = load_file(str(one / "checkpoints" / "iter_000003" / "policy" / "model.safetensors"))
    worst = max((full["policy." + k] - single[k]).abs().max().item() for k in single)
    assert worst <= WEIGHT_ATOL, worst
    start = load_file(str(ROOT / "rlreason/model/assets/tiny-arith/model.safetensors"))
    assert max((single[k] - start[k]).abs().max().item() for k in single) > 50 * WEIGHT_ATOL  # it trained


def _two_threads(rank: int, world: int, port: int, rounds: int, out) -> None:
    """One rank: a thread gathers over `producer`, the main thread over `group`, each with pauses that
    differ between ranks, so the two streams interleave in a different order on each rank."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from rlreason import distributed

    dist = distributed.setup(timeout_s=60)
    got: dict[str, list] = {}

    def stream(d: Dist, name: str) -> None:
        got[name], rng = [], random.Random(f"{rank}-{name}")
        for i in range(rounds):
            time.sleep(rng.random() * 0.01)
            got[name].append(d.all_gather((name, i, rank)))

    t = threading.Thread(target=stream, args=(dist.producer, "producer"))
    t.start()
    stream(dist, "learner")
    t.join()
    out.put((rank, got))


def test_the_producer_has_a_group_of_its_own():
    assert SINGLE.producer is SINGLE  # one process: no collective, nothing to separate
    d = Dist(rank=1, world=2, group="learner", producer_group="producer")
    assert d.producer.group == "producer" and d.group == "learner" and d.producer.rank == 1

    # Two gloo processes, two threads each, one group per thread: every gather gets its own stream's
    # items from both ranks (on one shared group they would pair across streams, or hang).
    port = free_port()
    ctx, rounds = mp.get_context("spawn"), 30
    out = ctx.Queue()
    procs = [ctx.Process(target=_two_threads, args=(r, 2, port, rounds, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank in (0, 1):
        for name in ("producer", "learner"):
            assert results[rank][name] == [[(name, i, 0), (name, i, 1)] for i in range(rounds)]


def test_a_tensor_parallel_engine_one_step_off_is_refused_under_torchrun(make_cfg, monkeypatch):
    """vLLM's tensor-parallel collectives would run on the producer's thread beside FSDP's (NCCL from two
    threads in a rank-dependent order can deadlock): validate() refuses it before anything starts, and
    build() (train() skips validate()) calls the same check."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"engine.tensor_parallel_size=2 with trainer.async_level=1 under "
                                          r"torchrun.*deadlock.*trainer.async_level=0"):
        make_cfg("engine=vllm", "engine.tensor_parallel_size=2", "trainer.async_level=1")
    make_cfg("engine=vllm", "engine.tensor_parallel_size=2", "trainer.async_level=0")
    make_cfg("engine=vllm", "engine.tensor_parallel_size=1", "trainer.async_level=1")  # one engine per rank
    engine = SimpleNamespace(name="vllm", tensor_parallel_size=2)
    assert tensor_parallel_problems(engine, 2, 2, 1) and not tensor_parallel_problems(engine, 2, 2, 0)
