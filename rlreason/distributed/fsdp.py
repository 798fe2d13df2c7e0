"""FSDP2 (`torch.distributed.fsdp.fully_shard`) for the learner's models, and the helpers the learner
uses to split its work across ranks.

Sharding: every decoder layer is its own FSDP unit (its parameters are all-gathered just before use and
freed after), then the whole model. On GPUs parameters compute in bf16 and gradients reduce in fp32
(MixedPrecisionPolicy); the master weights and Adam state stay fp32, sharded. The frozen reference model
can live on the CPU between uses (`distributed.offload_ref`, CPUOffloadPolicy).

Exact normalisation: each rank trains on its share of a minibatch, but the loss divides by the
minibatch's *global* token count (every rank holds the whole minibatch), and gradients are summed over
ranks, not averaged (`set_gradient_divide_factor(1)`), so the gradient is the single-process one.

Collectives inside forward/backward: FSDP all-gathers a unit's parameters in its forward, so all ranks
must run the same number of forward (and backward) passes; a rank with fewer micro-batches than the
others runs padding passes whose loss is multiplied by zero (`micro_batches`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from rlreason.distributed import Dist
from rlreason.distributed.shard import contiguous


def _layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks to shard one by one (HF decoder layers), found by their container (a peft
    model's inside its base model: learner.lora)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    for name in ("model.layers", "backbone.layers", "layers", "model.decoder.layers", "transformer.h"):
        mod: Any = model
        for part in name.split("."):
            mod = getattr(mod, part, None)
            if mod is None:
                break
        if isinstance(mod, nn.ModuleList):
            return list(mod)
    raise ValueError(f"rlreason: cannot find the decoder layers of {type(model).__name__} to shard")


def shard_model(model: nn.Module, dist: Dist, *, device: str, mixed_precision: bool, offload: bool = False
                ) -> nn.Module:
    """fully_shard each decoder layer, then the root; returns the (same, now sharded) module."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        FSDPModule,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
    )

    mesh = init_device_mesh("cuda" if device.startswith("cuda") else "cpu", (dist.world,))
    kwargs: dict[str, Any] = {"mesh": mesh}
    if mixed_precision:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    kwargs["offload_policy"] = CPUOffloadPolicy() if offload else OffloadPolicy()
    for layer in _layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)  # sum over ranks: the loss is already globally normalised
            m.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM)
    return model


class FullWeights:
    """The model's full tensors one by one, under their plain (HF) names, on every rank (iterate it).

    A sharded parameter is all-gathered when the consumer asks for it and dropped when it moves on,
    so a weight sync adds one full tensor of memory, not a model. With `dtype` (the engine's) a shard
    is cast before the gather: a bf16 gather of fp32 master weights moves and holds half the bytes
    (the engine would cast it on load anyway). All ranks must iterate in step.

    `specs()` says what the iteration will yield, (name, shape, dtype) in order, from the shards' own
    metadata: no gather, so a weight transfer announces the tensors before the first is gathered (listing
    them would need every rank, and hold the whole model)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None = None):
        self.model, self.dtype = model, dtype

    @staticmethod
    def _sharded(tensor: torch.Tensor) -> bool:
        from torch.distributed.tensor import DTensor

        return isinstance(tensor, DTensor)

    def specs(self) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        return [(name, tuple(t.shape), self.dtype if self.dtype is not None and self._sharded(t) else t.dtype)
                for name, t in self.model.state_dict().items()]  # a DTensor's shape is the full tensor's

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in self.model.state_dict().items():
            if self._sharded(tensor):
                tensor = (tensor.to(self.dtype) if self.dtype is not None else tensor).full_tensor()
            yield name, tensor.detach()


def full_weights(model: nn.Module, dtype: torch.dtype | None = None) -> FullWeights:
    return FullWeights(model, dtype)


def reshard(model: nn.Module | None) -> None:
    """Free the gathered parameters FSDP2 keeps on the root unit after a forward pass.

    The root (embeddings, final norm, LM head: 1.7 GB in bf16 for a 7B with a 100k vocabulary) is not
    resharded after its forward by default, because a backward normally follows at once. After a
    no-grad pass none does, and the reference model, which only runs no-grad passes, would keep its
    root gathered on every GPU for the whole run."""
    from torch.distributed.fsdp import FSDPModule

    model = getattr(model, "policy", model)  # learner.lora's reference: the policy with its adapters off
    if isinstance(model, FSDPModule):
        model.reshard()


def norm_value(norm: torch.Tensor) -> float:
    """clip_grad_norm_'s result as a float; over sharded parameters it is a replicated DTensor."""
    from torch.distributed.tensor import DTensor

    return (norm.full_tensor() if isinstance(norm, DTensor) else norm).item()


def local_share(items: list, dist: Dist) -> list:
    """This rank's contiguous share of `items` (all of them in one process)."""
    r = contiguous(len(items), dist.rank, dist.world)
    return items[r.start:r.stop]


def micro_batches(items: list, size: int, dist: Dist) -> list[tuple[list, bool]]:
    """This rank's share of `items` in chunks of `size`, padded to the count every rank runs.

    Returns (chunk, real); a padding entry repeats the first item and must not count (loss x 0,
    outputs dropped). In one process: the plain chunks, none padding."""
    mine = local_share(items, dist)
    chunks = [(mine[i:i + size], True) for i in range(0, len(mine), size)]
    most = math.ceil(math.ceil(len(items) / dist.world) / size) if dist.active else len(chunks)
    while len(chunks) < most:
        chunks.append((items[:1], False))
    return chunks


def gather_lists(local: list, dist: Dist) -> list:
    """Concatenate every rank's `local` list in rank order (the inverse of `local_share`)."""
    return [x for part in dist.all_gather(local) for x in part] if dist.active else local
