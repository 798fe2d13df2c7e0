"""Where a separate engine process runs (engine.devices) and how its weights arrive (engine.weight_transfer).

The rule on one node of `torchrun --nproc-per-node=N` (the SLURM launcher runs that torchrun on each node):
local rank r learns on GPU r (rlreason.distributed.setup), so the learners hold GPUs 0..N-1; with
engine.tensor_parallel_size=T, `engine.devices` lists the node's N*T engine GPUs and local rank r's
engine process gets devices[r*T:(r+1)*T] as its CUDA_VISIBLE_DEVICES. Indices count the GPUs this
process sees (CUDA_VISIBLE_DEVICES, if set, is translated back to physical ids). For 4 learners and 4
engines on 8 GPUs: `--nproc-per-node=4 engine.devices=[4,5,6,7]`.

Without engine.devices the engine process shares its rank's GPU. On CPU the setting is refused (there
are no devices to give; the engine process's share of the cores is engine.cpu_threads).

engine.weight_transfer=group on GPUs needs engine.devices: the transfer group is NCCL, and NCCL takes one
rank of a communicator per GPU ("Duplicate GPU detected"), so learner rank 0 and an engine on its GPU
cannot be in one group (vLLM's examples/rl use distinct GPUs, and CUDA IPC where a GPU is shared).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlreason.config import ConfigError

WEIGHT_TRANSFERS = ("file", "group")


def problems(engine: Any, *, world: int, local_world: int, gpus: int) -> list[str]:
    """What is wrong with engine.weight_transfer / engine.devices (empty: nothing). `gpus`: the GPUs
    this node's processes see (0 on CPU or with device=cpu)."""
    out: list[str] = []
    transfer = getattr(engine, "weight_transfer", "file")
    devices = getattr(engine, "devices", None)
    if transfer not in WEIGHT_TRANSFERS:
        out.append(f"engine.weight_transfer={transfer!r} is not one of {', '.join(WEIGHT_TRANSFERS)}")
    elif transfer == "group" and not (engine.name == "vllm" and engine.separate_process):
        out.append("engine.weight_transfer=group needs engine=vllm with engine.separate_process=true (an engine "
                   "in the learner's process takes its weights in place)")
    if not getattr(engine, "transfer_timeout_s", 1.0) > 0:
        out.append(f"engine.transfer_timeout_s={engine.transfer_timeout_s} must be > 0")
    if devices is None:
        return out + shared_gpu_problems(engine, local_world=local_world, gpus=gpus)
    devices = list(devices)
    tp = max(engine.tensor_parallel_size, 1)
    if engine.name != "vllm" or not engine.separate_process:
        return out + [f"engine.devices={devices} needs engine=vllm with engine.separate_process=true: only an "
                      "engine in a process of its own can run on devices of its own"]
    if gpus == 0:
        return out + [f"engine.devices={devices} lists GPUs, but this run sees none (CPU): leave it null; on CPU "
                      "the engine process's share of the cores is engine.cpu_threads"]
    if world > 1 and tp > 1:
        return out + [f"engine.devices with engine.tensor_parallel_size={tp} under torchrun is not built: each "
                      "rank's engine would span several GPUs, while rlreason/distributed/engine.py groups "
                      f"{tp} ranks into one engine; use tensor_parallel_size=1"]
    learners = list(range(local_world))
    if len(devices) != local_world * tp:
        out.append(f"engine.devices={devices} must list {local_world * tp} GPUs: {tp} per engine "
                   f"(engine.tensor_parallel_size) for each of the node's {local_world} ranks")
    if len(set(devices)) != len(devices):
        out.append(f"engine.devices={devices} lists a GPU twice: each engine needs GPUs of its own")
    if past := [d for d in devices if not 0 <= d < gpus]:
        out.append(f"engine.devices={devices}: {past} past this node's {gpus} GPUs (0..{gpus - 1})")
    if shared := sorted(set(devices) & set(learners)):
        out.append(f"engine.devices={devices} overlaps the learners' GPUs {learners} (local rank r learns on GPU "
                   f"r) at {shared}: with --nproc-per-node={local_world}, give the engines GPUs "
                   f"{local_world}..{gpus - 1}")
    return out


def shared_gpu_problems(engine: Any, *, local_world: int, gpus: int) -> list[str]:
    """engine.weight_transfer=group with the engine on its learner's GPU (engine.devices unset, on CUDA):
    refused, NCCL would stop at the first sync with "Duplicate GPU detected" (module docstring)."""
    if getattr(engine, "weight_transfer", "file") != "group" or gpus == 0 or engine.devices is not None:
        return []
    need = local_world * max(engine.tensor_parallel_size, 1)
    where = (f"e.g. engine.devices={list(range(local_world, local_world + need))}" if local_world + need <= gpus
             else f"{local_world + need} GPUs on the node for {local_world} learner rank(s) and their engines: "
                  f"this node has {gpus}")
    return [f"engine.weight_transfer=group with the engine process on its learner's GPU (engine.devices unset) "
            f"cannot run: the transfer group is NCCL, which takes one rank per GPU (\"Duplicate GPU detected\"); "
            f"give the engines GPUs of their own with engine.devices ({where}; docs/scaling.md), or use "
            f"engine.weight_transfer=file"]


def rank_devices(engine: Any, *, local_rank: int, world: int, local_world: int, gpus: int) -> list[int] | None:
    """This local rank's engine GPUs (visible indices), None when engine.devices is unset; a ConfigError
    names every problem."""
    if found := problems(engine, world=world, local_world=local_world, gpus=gpus):
        raise ConfigError("; ".join(found))
    if engine.devices is None:
        return None
    tp = max(engine.tensor_parallel_size, 1)
    return list(engine.devices)[local_rank * tp:(local_rank + 1) * tp]


def visible_devices(indices: Sequence[int], env: Mapping[str, str]) -> str:
    """CUDA_VISIBLE_DEVICES for a child that must see `indices` of the GPUs this process sees."""
    parent = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return ",".join(parent[i] if parent else str(i) for i in indices)


def node_layout(env: Mapping[str, str]) -> dict[str, int]:
    """world, local_world and local_rank of this process from torchrun's variables (1, 1, 0 outside)."""
    world = int(env.get("WORLD_SIZE", "1"))
    return {"world": world, "local_world": int(env.get("LOCAL_WORLD_SIZE", str(world))),
            "local_rank": int(env.get("LOCAL_RANK", "0"))}


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
