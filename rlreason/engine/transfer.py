"""Weights from learner rank 0 to engines on devices of their own: one protocol, gloo (CPU) or NCCL (GPUs).

The transfer group holds only the sender (learner rank 0, group rank 0) and the engine processes (group
ranks 1..N). It is built from a TCPStore that the sender hosts plus a process-group *backend object*
(`ProcessGroupGloo` / `ProcessGroupNCCL`), never through `init_process_group` or `new_group`: those
need every process in one default world, so the engines would join the learner's torchrun world and
FSDP's collectives would span them. This way the learner's default group stays exactly what torchrun
made, and an engine can join from any launcher.

Two planes, so that no wait on a peer is unbounded:
  - control, over the TCPStore (CPU sockets, whatever the data backend): the header (version, names,
    shapes, dtypes, bucket size), each engine's "ready" (or why it refuses the header) and its ack with
    the version it loaded. The sender polls these under `timeout_s`, so a dead engine is an error naming
    it, not a hang; an engine waits for the next header as long as the learner's update takes (a
    collective would time out meanwhile, and NCCL would want the header on the GPU).
  - data, over the process group: the tensors' bytes, packed in order into flat uint8 buckets of at most
    `bucket_bytes` (a tensor larger than that goes alone, without a copy). Raw bytes let one bucket hold
    every dtype (a typed buffer would need a bucket per dtype) and keep the order the learner yields in,
    so a gathering iterator (FSDP's `full_weights`) streams: one bucket in flight, not the model.
Per sync: every learner rank passes a barrier on its own group (`send_weights`), the sender posts the
header, waits for every engine's ready, broadcasts the buckets, and waits for every ack; the engine
rebuilds the named tensors and hands them as an iterator to its loader (vLLM's `reload_weights`).
After any failure the sender aborts the group: a later send raises instead of talking to a broken group.

Timeouts. The sender's deadline `timeout_s` covers the readies and the acks (one deadline for all the
engines). On gloo a broadcast blocks the sender, so the group's own timeout is that same deadline (a
timed-out gloo collective raises). On NCCL a broadcast is only queued, and NCCL's watchdog *aborts the
process* when a collective outlives the group's timeout: that timeout is the deadline plus
`NCCL_MARGIN_S`, so that a dead engine is the sender's TransferError (and the group's abort, which
frees the stuck collectives), never the watchdog's SIGABRT of learner rank 0.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

DEFAULT_BUCKET_BYTES = 256 << 20
ALIGN = 16  # bucket offsets: a uint8 slice can be viewed as any dtype only at an aligned offset
POLL_S = 0.01
NCCL_MARGIN_S = 600.0  # the broadcast's own time (gathering the model bucket by bucket), then the abort
Named = tuple[str, torch.Tensor]


class TransferError(RuntimeError):
    """An engine did not take a version: the message names the engine and the version."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def specs_of(named: Iterable[Named]) -> list[TensorSpec]:
    return [TensorSpec(n, tuple(t.shape), t.dtype) for n, t in named]


def announced(weights: Iterable[Named]) -> list[TensorSpec] | None:
    """The specs `weights` declares without producing a tensor (a `specs()` method giving (name, shape,
    dtype) in order, as FSDP's gathering iterator rlreason.distributed.fsdp.FullWeights has), or None."""
    specs = getattr(weights, "specs", None)
    return [TensorSpec(n, tuple(shape), dtype) for n, shape, dtype in specs()] if callable(specs) else None


def group_timeout_s(backend: str, deadline_s: float) -> float:
    """The transfer group's collective timeout for the sender's deadline `deadline_s` (module docstring)."""
    return deadline_s + NCCL_MARGIN_S if backend == "nccl" else deadline_s


def plan(specs: list[TensorSpec], bucket_bytes: int) -> list[tuple[dict[int, int], int]]:
    """Buckets of consecutive tensors: ({index into specs: byte offset}, bytes). Both sides compute it from
    the header. Empty tensors are in none (nothing to send); a tensor over `bucket_bytes` is alone."""
    buckets: list[tuple[dict[int, int], int]] = []
    current: dict[int, int] = {}
    size = 0
    for i, s in enumerate(specs):
        if s.nbytes == 0:
            continue
        if current and size + s.nbytes > bucket_bytes:
            buckets.append((current, size))
            current, size = {}, 0
        current[i] = size
        size += -(-s.nbytes // ALIGN) * ALIGN
    return buckets + [(current, size)] if current else buckets


def _poll(store: Any, key: str, seconds: float | None) -> bytes | None:
    """The value at `key` once it is set; None after `seconds` (None: no limit)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while not store.check([key]):
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)
    return store.get(key)


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


def mismatch(expected: list[TensorSpec], got: list[TensorSpec]) -> str | None:
    """What differs between the tensors an engine holds and those a header announces (None: nothing)."""
    want, have = {s.name: s for s in expected}, {s.name: s for s in got}
    missing, extra = sorted(want.keys() - have.keys()), sorted(have.keys() - want.keys())
    differ = [f"{n}: sent {tuple(have[n].shape)} {have[n].dtype}, expected {tuple(want[n].shape)} {want[n].dtype}"
              for n in sorted(want.keys() & have.keys()) if want[n] != have[n]]
    parts = [f"{label} ({len(xs)}): {xs[:5]}" for label, xs in
             (("missing", missing), ("unexpected", extra), ("different shape or dtype", differ)) if xs]
    return "header mismatch: " + "; ".join(parts) if parts else None


class _Group:
    """The data plane: broadcasts from group rank 0, blocking until this rank's part is done (on NCCL:
    queued on the stream; the ack, not a device sync, says the engine has it: a sync would hang on a
    dead peer). `timeout_s`: its collectives' (`group_timeout_s`)."""

    def __init__(self, store: Any, rank: int, world: int, backend: str, timeout_s: float):
        import torch.distributed as dist

        store = dist.PrefixStore("group/", store)
        self.timeout_s = timeout_s
        if backend == "gloo":
            self.pg = dist.ProcessGroupGloo(store, rank, world, timedelta(seconds=timeout_s))
        elif backend == "nccl":
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = timedelta(seconds=timeout_s)
            self.pg = dist.ProcessGroupNCCL(store, rank, world, options)
        else:
            raise ValueError(f"transfer backend {backend!r}: expected gloo or nccl")
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        self.bcast = lambda t: self.pg.broadcast([t], opts).wait()

    def close(self) -> None:
        if self.pg is None:
            return
        with contextlib.suppress(Exception):  # abort frees a collective stuck on a dead peer (NCCL)
            (getattr(self.pg, "abort", None) or self.pg.shutdown)()
        # Released now, not at interpreter exit: a closed gloo group destroyed during the interpreter's
        # teardown died of std::terminate (SIGABRT, "terminate called without an active exception") about
        # one exit in ten on CPU (scripts/gpu_check.py's transfer check); released here, none in 70.
        self.pg = None
        self.bcast = None


def _connect(host: str, port: int, rank: int, world: int, backend: str, timeout_s: float,
             join_s: float) -> tuple[Any, _Group]:
    """The store (rank 0 hosts it), then the group once all `world` ranks are in: joining waits up to
    `join_s` (an engine may take minutes to start), the store's calls then get `timeout_s`, the group's
    collectives `group_timeout_s`."""
    import torch.distributed as dist

    try:
        store = dist.TCPStore(host, port, world, is_master=rank == 0, timeout=timedelta(seconds=join_s),
                              wait_for_workers=False)
        if store.add("joined", 1) == world:
            store.set("all joined", "")
        if _poll(store, "all joined", join_s) is None:
            raise TimeoutError(f"{store.add('joined', 0)} of {world} ranks joined")
        store.set_timeout(timedelta(seconds=timeout_s))
        group = _Group(store, rank, world, backend, group_timeout_s(backend, timeout_s))
    except Exception as e:
        raise TransferError(f"rank {rank} of the weight transfer group at {host}:{port} ({backend}, {world} ranks) "
                            f"could not form it within {join_s:g} s: {type(e).__name__}: {e}") from e
    return dist.PrefixStore("rlreason-transfer/", store), group


class WeightSender:
    """Learner rank 0's end. Blocks until the `engines` receivers have joined (or raises after `join_s`)."""

    def __init__(self, host: str, port: int, engines: int, *, backend: str = "gloo", device: Any = "cpu",
                 timeout_s: float = 120.0, join_s: float = 600.0, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.engines, self.device, self.timeout_s, self.bucket_bytes = engines, torch.device(device), timeout_s, bucket_bytes
        self.store, self.group = _connect(host, port, 0, engines + 1, backend, timeout_s, join_s)
        self.seq = 0
        self.broken: str | None = None
        self.specs: list[TensorSpec] | None = None  # the last header's

    def send(self, weights: Iterable[Named], version: int, specs: list[TensorSpec] | None = None) -> dict[int, int]:
        """Send one version; returns {engine rank: version it acked}. Without `specs` (nor `announced`
        ones) the weights are listed first (their shapes go in the header); with them they stream, one
        bucket at a time."""
        if self.broken:
            raise TransferError(f"the weight transfer group is closed after an earlier failure: {self.broken}")
        specs = specs or announced(weights)
        if specs is None:
            weights = list(weights)
            specs = specs_of(weights)
        self.specs = specs
        seq, engines = self.seq, range(1, self.engines + 1)
        self.seq += 1
        stage = "ready"
        try:
            self.store.set(f"header/{seq}", json.dumps({"version": version, "bucket_bytes": self.bucket_bytes,
                                                        "specs": [[s.name, s.shape, str(s.dtype)[6:]] for s in specs]}))
            deadline = time.monotonic() + self.timeout_s
            for r in engines:
                reply = self._wait(f"ready/{seq}/{r}", r, version, "did not take the header", deadline)
                if reply != b"ok":
                    raise TransferError(f"engine {r} refused weights version {version}: "
                                        f"{reply.decode().removeprefix('error: ')}")
            stage = "broadcast"
            self._broadcast(iter(weights), specs)
            stage, deadline = "ack", time.monotonic() + self.timeout_s
            for r in engines:
                ack = json.loads(self._wait(f"ack/{seq}/{r}", r, version, "did not acknowledge", deadline))
                if ack.get("version") != version:
                    raise TransferError(f"engine {r} did not load weights version {version}: {ack.get('error', ack)}")
        except Exception as e:
            if isinstance(e, TransferError):
                msg = str(e)
            else:  # a group error (gloo: "Connection closed by peer") says which socket, not which engine
                msg = (f"the transfer of weights version {version} to engines {list(engines)} failed during "
                       f"{stage}: {type(e).__name__}: {e}")
            self.close(msg)
            raise TransferError(msg) from e
        for key in [f"header/{seq}"] + [f"{k}/{seq}/{r}" for k in ("ready", "ack") for r in engines]:
            self.store.delete_key(key)
        return dict.fromkeys(engines, version)  # each engine acked this version

    def _wait(self, key: str, engine: int, version: int, what: str, deadline: float) -> bytes:
        """`key`'s value, by `deadline` (time.monotonic()), which every engine's wait of one stage shares."""
        if (value := _poll(self.store, key, max(deadline - time.monotonic(), 0.0))) is None:
            raise TransferError(f"engine {engine} {what} for weights version {version} within "
                                f"{self.timeout_s:g} s (dead, hung, or not receiving)")
        return value

    def _broadcast(self, weights: Iterator[Named], specs: list[TensorSpec]) -> None:
        pos = 0

        def take() -> torch.Tensor:  # the next tensor, checked against the header it was announced in
            nonlocal pos
            name, t = next(weights, (None, None))
            s = specs[pos]
            if t is None or (name, tuple(t.shape), t.dtype) != (s.name, s.shape, s.dtype):
                got = "nothing" if t is None else f"{name} {tuple(t.shape)} {t.dtype}"
                raise ValueError(f"weight {pos} is {got}; the header announced {s.name} {s.shape} {s.dtype}")
            pos += 1
            return t.detach()

        for offsets, size in plan(specs, self.bucket_bytes):
            last = max(offsets)
            if len(offsets) == 1:  # alone: its own bytes, no copy
                while pos < last:
                    take()
                buf = as_bytes(take().to(self.device))
            else:
                buf = torch.empty(size, dtype=torch.uint8, device=self.device)
                while pos <= last:
                    i, t = pos, take()
                    if i in offsets:
                        buf[offsets[i]:offsets[i] + specs[i].nbytes].copy_(as_bytes(t.to(self.device)))
            self.group.bcast(buf)
        while pos < len(specs):
            take()
        if next(weights, None) is not None:
            raise ValueError(f"more weights than the {len(specs)} the header announced")

    def close(self, why: str = "closed") -> None:
        """Abort the group (a broadcast queued to a dead engine is freed, and NCCL's watchdog, whose timeout
        it would outlive, has nothing left to abort the process for); a later send raises."""
        self.broken = self.broken or why
        self.group.close()


class WeightReceiver:
    """An engine's end: group rank `rank` (1..engines). `expected`: the tensors this engine holds; a header
    that differs is refused (the sender raises with the difference) rather than loaded."""

    def __init__(self, host: str, port: int, rank: int, engines: int, *, backend: str = "gloo", device: Any = "cpu",
                 timeout_s: float = 120.0, join_s: float = 600.0, expected: list[TensorSpec] | None = None):
        self.rank, self.device, self.expected = rank, torch.device(device), expected
        self.store, self.group = _connect(host, port, rank, engines + 1, backend, timeout_s, join_s)
        self.seq = 0

    def receive(self, load: Callable[[Iterator[Named]], Any], wait_s: float | None = None) -> int:
        """Wait (up to `wait_s`, default as long as the learner lives) for the next version, hand its
        tensors to `load` as an iterator, ack; returns the version loaded."""
        seq = self.seq
        self.seq += 1
        try:
            header = _poll(self.store, f"header/{seq}", wait_s)
        except Exception as e:  # the sender hosts the store: its process is gone
            raise RuntimeError(f"engine {self.rank}: the learner's transfer store is gone ({e})") from e
        if header is None:
            raise TimeoutError(f"engine {self.rank}: no weights within {wait_s:g} s")
        header = json.loads(header)
        version, specs = header["version"], [TensorSpec(n, tuple(sh), getattr(torch, d)) for n, sh, d in header["specs"]]
        problem = mismatch(self.expected, specs) if self.expected is not None else None
        self.store.set(f"ready/{seq}/{self.rank}", f"error: {problem}" if problem else "ok")
        if problem:
            raise ValueError(f"weights version {version} refused: {problem}")
        tensors = self._tensors(specs, plan(specs, header["bucket_bytes"]))
        try:
            load(tensors)
            for _ in tensors:  # what the loader left: the sender broadcasts every bucket regardless
                pass
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # the ack means loaded, not queued
        except Exception as e:
            with contextlib.suppress(Exception):  # the rest of the buckets, if the group still works
                for _ in tensors:
                    pass
            self.store.set(f"ack/{seq}/{self.rank}", json.dumps({"error": f"{type(e).__name__}: {e}"}))
            raise
        self.store.set(f"ack/{seq}/{self.rank}", json.dumps({"version": version}))
        return version

    def _tensors(self, specs: list[TensorSpec], buckets: list[tuple[dict[int, int], int]]) -> Iterator[Named]:
        pos = 0

        def empty(s: TensorSpec) -> torch.Tensor:
            return torch.empty(s.shape, dtype=s.dtype, device=self.device)

        for offsets, size in buckets:
            if len(offsets) == 1:  # received in place, no copy
                views = {i: empty(specs[i]) for i in offsets}
                self.group.bcast(as_bytes(*views.values()))
            else:
                buf = torch.empty(size, dtype=torch.uint8, device=self.device)
                self.group.bcast(buf)
                views = {i: buf[o:o + specs[i].nbytes].view(specs[i].dtype).view(specs[i].shape)
                         for i, o in offsets.items()}
            while pos <= max(offsets):
                yield specs[pos].name, views[pos] if pos in views else empty(specs[pos])
                pos += 1
        for s in specs[pos:]:
            yield s.name, empty(s)

    def close(self) -> None:
        self.group.close()


def send_weights(learner: Any, sender: WeightSender | None, weights: Iterable[Named], version: int,
                 specs: list[TensorSpec] | None = None) -> dict[int, int]:
    """Every learner rank calls this (`learner`: rlreason.distributed's Dist; its barrier is a no-op in one
    process). The barrier first: no rank is still inside the update when rank 0 sends. Only rank 0 holds
    a sender; the others consume `weights` in step (a gathering iterator is collective on every rank), and
    so does rank 0 after a failure: the rest of the weights, before the outcome, else the other ranks would
    wait in a gather that rank 0 never joins. Rank 0's outcome is broadcast, so an engine that does not ack
    stops every learner rank, not just 0."""
    learner.barrier()
    outcome: Any = None
    error: Exception | None = None
    specs = specs or announced(weights)
    weights = iter(weights)
    if learner.main:
        try:
            outcome = sender.send(weights, version, specs)
        except Exception as e:  # any: the other ranks must not wait in the broadcast below for ever
            error, outcome = e, str(e) if isinstance(e, TransferError) else (
                f"learner rank 0 could not send weights version {version}: {type(e).__name__}: {e}")
            with contextlib.suppress(Exception):  # a gather that fails has failed on every rank
                for _ in weights:
                    pass
    else:
        for _ in weights:
            pass
    outcome = learner.broadcast(outcome)
    if error is not None:
        raise error
    if isinstance(outcome, str):
        raise TransferError(outcome)
    return outcome
