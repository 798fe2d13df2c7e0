"""Checkpoints of a data-parallel run: the learner's sharded weights and optimizer state through
torch.distributed.checkpoint (each rank writes its own shard files, in parallel), and rank 0's run state
(sampler, RNG, history, iteration) in trainer_state.pt, in the same atomic directory as a single-process
checkpoint (rlreason/trainer/checkpoint.py: temp dir, manifest of every file and its size, fsync, one
rename). Multi-node runs need the run dir on a filesystem every node sees.

A checkpoint resumes at the world size it was written with (build.check_world_size says so otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlreason.distributed import Dist
from rlreason.trainer import checkpoint

DCP_DIR = "dcp"


class LearnerState:
    """The learner's models and optimizers as one DCP `Stateful` (sharded tensors, plain FQNs).

    `trainable_only` (learner.lora): the frozen base is left out, as a single-process LoRA checkpoint
    leaves it out; resume rebuilds it from model.path, so loading expects the trainable tensors alone."""

    def __init__(self, models: dict[str, nn.Module], optimizers: list[torch.optim.Optimizer],
                 trainable_only: bool = False):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        self.root = nn.ModuleDict(models)  # one module so every optimizer's parameters have a name
        self.optimizers = optimizers
        self.options = StateDictOptions(ignore_frozen_params=trainable_only, strict=not trainable_only)

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model, optim = get_state_dict(self.root, self.optimizers, options=self.options)
        return {"model": model, "optim": optim}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_state_dict

        set_state_dict(self.root, self.optimizers, model_state_dict=state["model"], optim_state_dict=state["optim"],
                       options=self.options)


def save(ckpt_root: Path, iteration: int, learner_state: LearnerState, run_state: dict[str, Any], dist: Dist,
         keep: int = 2, behaviour: dict[str, torch.Tensor] | None = None,
         also: Callable[[Path], None] | None = None) -> Path:
    """Every rank calls this; rank 0 renames the finished directory into place. `behaviour`: rank 0's full
    weights of trainer.async_level=1's batch in flight (checkpoint.BEHAVIOUR; every rank reads them on resume).
    `also(tmp)`: more files, called on every rank (it may gather) after the shards are written."""
    import torch.distributed.checkpoint as dcp

    final = ckpt_root / f"{checkpoint.PREFIX}{iteration:06d}"
    if dist.main:
        def write(tmp: Path) -> None:
            dist.broadcast(str(tmp))
            dcp.save({"learner": learner_state}, checkpoint_id=str(tmp / DCP_DIR))
            if also is not None:
                also(tmp)
            dist.barrier()  # every rank's shard files are complete
            torch.save(run_state, tmp / "trainer_state.pt")
            if behaviour is not None:
                from safetensors.torch import save_file

                save_file(behaviour, str(tmp / checkpoint.BEHAVIOUR))

        checkpoint.save_dir(ckpt_root, iteration, write, keep)
    else:
        tmp = Path(dist.broadcast())
        dcp.save({"learner": learner_state}, checkpoint_id=str(tmp / DCP_DIR))
        if also is not None:
            also(tmp)
        dist.barrier()
    dist.barrier()  # the checkpoint is in place before any rank goes on
    return final


def load(path: Path, learner_state: LearnerState) -> None:
    """Load the sharded learner state of checkpoint dir `path` into this rank's shard (collective)."""
    import torch.distributed.checkpoint as dcp

    if not (path / DCP_DIR).is_dir():
        raise FileNotFoundError(f"rlreason: {path} holds no {DCP_DIR}/ (it was written by a single-process run)")
    dcp.load({"learner": learner_state}, checkpoint_id=str(path / DCP_DIR))


def full_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The full (unsharded) learner tensors of a checkpoint, offline in one process: for tests and for
    exporting (keys `model.policy.<hf name>`, `model.critic....`, `optim....`)."""
    import tempfile

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "full.pt")
        dcp_to_torch_save(str(path / DCP_DIR), out)
        state = torch.load(out, weights_only=False)
    return state["learner"]
