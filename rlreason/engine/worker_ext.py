"""The engine's end of engine.weight_transfer=group: a vLLM worker extension (`worker_extension_cls`).

vLLM mixes this class into its worker, in the engine's own process, so its methods run there when the
learner calls `llm.collective_rpc("rlreason_init_transfer", ...)` / `("rlreason_receive", ...)`. Only
control messages cross collective_rpc (host, port, ranks, a version); the tensors arrive over the
transfer group (rlreason/engine/transfer.py) and go straight into the worker's `reload_weights` as an
iterator, the same loader engine.weight_transfer=file calls with a path. Method names carry a prefix:
vLLM refuses an extension whose attributes collide with the worker's.
"""

from __future__ import annotations

from typing import Any

import torch


class TransferWorkerExtension:
    def rlreason_init_transfer(self, host: str, port: int, first_rank: int, receivers: int, timeout_s: float,
                               join_s: float) -> int:
        """Join the transfer group as group rank `first_rank` + this worker's rank in its engine (a
        tensor-parallel engine's workers each take the full tensors: reload_weights keeps their shards).
        Returns that group rank. The backend follows the worker's device: NCCL on CUDA, gloo on CPU."""
        from rlreason.engine.transfer import WeightReceiver

        device = _device(self)
        rank = first_rank + int(getattr(self, "rank", 0) or 0)
        self._rlreason_receiver = WeightReceiver(
            host, port, rank, receivers, backend="nccl" if device.type == "cuda" else "gloo", device=device,
            timeout_s=timeout_s, join_s=join_s)
        return rank

    def rlreason_receive(self, version: int, wait_s: float | None) -> int:
        """Take the next weights version from the group into the model (in place), ack it; returns it.
        A version other than the one the learner announced to this call is an error: the engine would
        otherwise be one sync behind what the learner believes it holds."""
        receiver = getattr(self, "_rlreason_receiver", None)
        if receiver is None:
            raise RuntimeError("rlreason_receive before rlreason_init_transfer: this worker is in no transfer group")
        got = receiver.receive(lambda tensors: self.reload_weights(weights_iterator=tensors), wait_s=wait_s)
        if got != version:
            raise RuntimeError(f"received weights version {got}, expected {version}")
        return got

    def rlreason_close_transfer(self) -> None:
        receiver = getattr(self, "_rlreason_receiver", None)
        if receiver is not None:
            receiver.close()
            self._rlreason_receiver = None


def _device(worker: Any) -> torch.device:
    device = getattr(worker, "device", None)
    return torch.device(device) if device is not None else torch.device("cpu")
