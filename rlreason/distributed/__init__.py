"""Data-parallel runs under torchrun: one process per device, one engine and one learner shard each.

`torchrun --nproc-per-node=N -m rlreason.run ...` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR; `setup()`
reads them and joins the process group (NCCL on GPUs, gloo on CPU). Without them (plain
`python -m rlreason.run`) nothing here starts and every helper is the identity, so a single-process run
takes exactly the code path it always did.

How work is split (see the modules): every rank holds the whole iteration's data (questions, episodes,
advantages: a few MB), and splits only the compute.
  - engine.py: each engine call is sharded by request across the ranks' engines and gathered back, so
    every rank sees every completion in request order; grading is sharded the same way. With
    engine.tensor_parallel_size=T, T consecutive ranks share one engine and calls split across engines.
  - select.py: the curriculum runs on rank 0 (it owns the stats store); its rollouts run on all ranks.
  - fsdp.py: the learner's models are sharded with FSDP2; each rank trains on its share of every
    minibatch and the loss divides by the minibatch's global token count.
  - checkpoint.py: torch.distributed.checkpoint (one file per rank) plus rank 0's run state.
Python objects travel over a gloo group of their own (cheap to pickle, and NCCL would need them on GPU).

Two threads, two groups. At trainer.async_level=1 the producer (selection, rollouts, grading, MC: the
engine's and the grader's gathers, the selection's broadcasts) runs on a thread beside the learner (its
own gathers, FSDP's collectives on the default group). Collectives of one group must come in the same
order on every rank, and two threads sharing a group would interleave theirs in an order each rank's
scheduler picks. So `setup()` makes a second gloo group, `Dist.producer`: everything the producer calls
uses it (ShardedEngine, ShardedGrader, select.next_batch), the learner and checkpoints the first one and
FSDP the default group. Each group then sees its collectives from one thread at a time, in program order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: Any = None  # gloo group for object collectives (None when world == 1)
    producer_group: Any = None  # a second gloo group, the producer's (see `producer`)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def producer(self) -> Dist:
        """The same ranks over the producer's own group: the collectives of the engine, the grader and the
        selection (rlreason/trainer/produce.py), which at trainer.async_level=1 run on a thread beside the
        learner's. In one process, or before setup() made the group, `self`."""
        if not self.active or self.producer_group is None:
            return self
        return replace(self, group=self.producer_group)

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def broadcast(self, obj: Any = None, src: int = 0) -> Any:
        """Rank `src`'s `obj` on every rank."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src, group=self.group)
        return box[0]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks of a list of floats (in float64)."""
        if not self.active:
            return list(values)
        return [sum(col) for col in zip(*self.all_gather(list(values)))]

    def any(self, flag: bool) -> bool:
        return any(self.all_gather(bool(flag))) if self.active else bool(flag)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier(group=self.group)


SINGLE = Dist()
_CURRENT: Dist = SINGLE


def launched() -> bool:
    """True in a process torchrun started with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(timeout_s: float = 1800.0) -> Dist:
    """Join the torchrun process group (idempotent); SINGLE when not launched by torchrun."""
    global _CURRENT
    if not launched():
        return SINGLE
    if _CURRENT.active:
        return _CURRENT
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    timeout = timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl", timeout=timeout, device_id=torch.device("cuda", local_rank))
        else:
            dist.init_process_group("gloo", timeout=timeout)
    # new_group is collective: every rank makes both, in this order.
    group = dist.new_group(backend="gloo", timeout=timeout)
    _CURRENT = Dist(rank, world, local_rank, group, dist.new_group(backend="gloo", timeout=timeout))
    return _CURRENT


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (the OS picks it; another process may take it before it is bound again)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def current() -> Dist:
    return _CURRENT


class SyncMeter:
    """Seconds and added accelerator memory of a weight sync (`time/sync_last_s`, `sync/peak_added_mib`).

    The sharded sync gathers one full tensor at a time, so it should add about one tensor, not a model;
    on CPU (no allocator statistics) only the time is measured."""

    def __init__(self, metrics: dict[str, float]):
        self.metrics = metrics

    def __enter__(self) -> SyncMeter:
        import time

        import torch

        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        import time

        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.metrics["sync/peak_added_mib"] = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        self.metrics["time/sync_last_s"] = time.perf_counter() - self.t0
