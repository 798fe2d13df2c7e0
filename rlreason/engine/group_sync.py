"""engine.weight_transfer=group, the learner's end: weights to the engine processes over the transfer group.

One `GroupSync` per rank's VLLMEngine (engine.separate_process). At the first sync every rank asks its
engine's worker to join the group (`rlreason_init_transfer`, rlreason/engine/worker_ext.py) and learner
rank 0 hosts it (`WeightSender`, rlreason/engine/transfer.py): group rank 0 is learner rank 0, group
ranks 1 + r*T .. r*T + T are rank r's engine workers (T = tensor_parallel_size). Each sync then: every
rank starts its engine's `rlreason_receive` on a thread (collective_rpc blocks until the worker returns),
every rank calls `send_weights` (a barrier across learner ranks, rank 0 broadcasts, every rank learns
whether every engine acked), then joins its thread. Backend: NCCL when the engine runs on CUDA, gloo on CPU.

A dead or hung engine is one error, never a hang: the client's own flag first (a process already gone),
then the sender's deadline (`engine.transfer_timeout_s`) on the readies and the acks, then a bounded join
of the rpc thread.

The header needs every tensor's shape before the first byte. The learner's weights (FSDP's gathering
iterator, `FullWeights`) announce them from the shards' metadata on every rank, so rank 0 writes the header
without a gather and every rank gathers in step after the barrier, one bucket in flight: never the whole
model on rank 0. Weights that announce nothing (a dict's items) are listed by the sender, after the
barrier too (listing before it would deadlock a gathering iterator: its gathers need the ranks that wait
in the barrier); later syncs reuse the shapes of the first.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import torch

from rlreason.distributed import free_port
from rlreason.engine import _vllm_compat as compat
from rlreason.engine.transfer import Named, TensorSpec, TransferError, WeightSender, announced, send_weights

DEAD = compat.DEAD_ENGINE


class _Call:
    """`fn(*args)` on a daemon thread; `result(timeout_s)` returns it or raises what it raised."""

    def __init__(self, fn: Callable[..., Any], *args: Any):
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True, name="rlreason-engine-rpc")
        self.thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self.value = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self.error = e

    def result(self, timeout_s: float, what: str) -> Any:
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise TransferError(f"the engine's worker did not return from {what} within {timeout_s:g} s (hung)")
        if self.error is not None:
            raise self.error
        return self.value


class GroupSync:
    def __init__(self, llm: Any, *, timeout_s: float, tensor_parallel: int = 1, dist: Any = None):
        from rlreason import distributed

        self.llm, self.timeout_s, self.tp = llm, timeout_s, max(tensor_parallel, 1)
        self.dist = dist or distributed.current()
        self.sender: WeightSender | None = None
        self.connected = False
        self.specs: list[TensorSpec] | None = None
        self.acks: dict[int, int] = {}  # the last sync's {group rank: version}, every engine's

    def _check_alive(self) -> None:
        if compat.engine_dead(self.llm):
            raise RuntimeError(DEAD)

    def _connect(self) -> None:
        dist, backend = self.dist, "gloo" if compat.on_cpu() else "nccl"
        address = None
        if dist.main:
            port = free_port("")  # for the store rank 0 hosts, on every interface
            one_node = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world)) == dist.world
            address = ("127.0.0.1" if one_node else socket.gethostname(), port)
        host, port = dist.broadcast(address)
        receivers = dist.world * self.tp
        call = _Call(compat.worker_rpc, self.llm, "rlreason_init_transfer", host, port, 1 + dist.rank * self.tp,
                     receivers, self.timeout_s, self.timeout_s)
        error: str | None = None
        try:
            if dist.main:
                device = torch.device("cpu") if backend == "gloo" else torch.device("cuda", torch.cuda.current_device())
                self.sender = WeightSender(host, port, receivers, backend=backend, device=device,
                                           timeout_s=self.timeout_s, join_s=self.timeout_s)
            call.result(self.timeout_s + 30, "rlreason_init_transfer")
        except Exception as e:  # noqa: BLE001 - every rank learns of it below
            error = self._explain(e, f"rank {dist.rank}'s engine could not join the weight transfer group")
        errors = [e for e in dist.all_gather(error) if e]
        if errors:
            raise TransferError(errors[0])
        self.connected = True

    def sync(self, weights: Iterable[Named], version: int) -> dict[int, int]:
        """Push `weights` as `version` to every rank's engine; returns {group rank: version acked}."""
        self._check_alive()
        if not self.connected:
            self._connect()
        # The engine waits for the header as long as it takes every learner rank to reach the barrier (rank 0
        # may lag by a checkpoint); the sender's deadlines bound the sync, and a learner gone takes its store.
        call = _Call(compat.worker_rpc, self.llm, "rlreason_receive", version, None)
        specs = announced(weights) or self.specs  # None: rank 0's sender lists them, after the barrier
        try:
            acks = send_weights(self.dist, self.sender, weights, version, specs)
        except Exception as e:
            raise TransferError(self._explain(e, str(e), call)) from e
        try:
            call.result(self.timeout_s, "rlreason_receive")
        except Exception as e:
            raise TransferError(self._explain(e, f"rank {self.dist.rank}'s engine failed to load weights "
                                                 f"version {version}")) from e
        self.specs, self.acks = specs or (self.sender.specs if self.sender else None), acks
        return acks

    def _explain(self, e: BaseException, message: str, call: _Call | None = None) -> str:
        """`message`, with the engine's side of it: dead, or what its worker raised."""
        if call is not None:
            call.thread.join(1.0)  # a dead engine fails its rpc at once; a hung one is not waited for
            e = call.error or e
        if compat.engine_dead(self.llm) or isinstance(e, compat.dead_engine_errors()):
            return f"{message}: {DEAD}"
        if call is not None and call.error is None:
            return message
        return f"{message}: {type(e).__name__}: {e}"

    def close(self) -> None:
        """The worker leaves the group first (its gloo/NCCL threads would outlive vLLM's shutdown grace
        period), then rank 0's end; best effort: closing never raises."""
        if self.connected and not compat.engine_dead(self.llm):
            with contextlib.suppress(Exception):
                compat.worker_rpc(self.llm, "rlreason_close_transfer", timeout_s=10.0)
        self.connected = False
        if self.sender is not None:
            self.sender.close()
            self.sender = None
