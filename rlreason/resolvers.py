"""The OmegaConf resolvers the config tree uses (`${per_task:...}`, `${world_tag:}`, `${sweep_subdir:...}`,
`${rlreason.model_name:...}`), registered when rlreason.config is imported."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def _per_task(table: Any, *, _root_: Any) -> Any:
    """`${per_task:{math: 1000, gsm8k: 650}}`: the value for the run's data.name (presets that follow the
    reference's per-task settings, e.g. experiment=paper's iterations)."""
    name = _root_.data.name
    if name not in table:
        from rlreason.config import ConfigError

        raise ConfigError(f"this preset has no value for data={name} (it has {', '.join(table)}): set it explicitly")
    return table[name]


OmegaConf.register_new_resolver("per_task", _per_task, replace=True)


def _world_tag() -> str:
    """`${world_tag:}` in the default run name: "" in one process, "-w8" under torchrun with 8 ranks, so a
    sharded run and a single-process run of the same config keep separate run dirs (a checkpoint
    resumes only at the world size that wrote it)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f"-w{world}" if world > 1 else ""


OmegaConf.register_new_resolver("world_tag", _world_tag, replace=True)


def _sweep_subdir(override_dirname: str, limit: int = 120) -> str:
    """`${sweep_subdir:${hydra.job.override_dirname}}`, a multirun's run dir name: the job's overrides,
    one path component ("/" in a value would nest dirs), and when past `limit` characters (a file name
    holds 255 bytes) cut, with a hash of the whole so two runs never share a dir."""
    import hashlib

    name = override_dirname.replace("/", "_") or "defaults"
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


OmegaConf.register_new_resolver("sweep_subdir", _sweep_subdir, replace=True)


def model_name(path: str) -> str:
    """The name a run dir gets for `model.path`: its last component ("org/name" -> "name"); a checkpoint
    dir (RUN/checkpoints/iter_N[/policy]) -> "RUN-iter_N", so evals of different checkpoints differ."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[-1] == "policy":
        parts = parts[:-1]
    if len(parts) >= 3 and parts[-2] == "checkpoints":
        return f"{parts[-3]}-{parts[-1]}"
    return parts[-1] if parts else "model"
