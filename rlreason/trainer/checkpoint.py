"""Atomic checkpoints: write everything into a temp dir, fsync, then one rename.

A crash or a full disk during a write leaves the previous checkpoint untouched and loadable; the temp
dir is cleaned up on the next start. `latest` is a convenience pointer; the iter_* dirs are the truth.
Each checkpoint lists its files and their sizes in manifest.json; loading checks them, so a truncated
or incomplete checkpoint (a copy cut short, a damaged disk) is skipped for the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

PREFIX = "iter_"
MANIFEST = "manifest.json"
BEHAVIOUR = "behaviour.safetensors"


class CheckpointError(RuntimeError):
    pass


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(ckpt_root: Path, iteration: int, policy, state: dict[str, Any], critic=None, keep: int = 2,
         behaviour: dict[str, torch.Tensor] | None = None) -> Path:
    """`behaviour`: trainer.async_level=1's weights of the batch in flight (HF names), in BEHAVIOUR."""
    def write(tmp: Path) -> None:
        if behaviour is not None:
            from safetensors.torch import save_file

            save_file(behaviour, str(tmp / BEHAVIOUR))
        policy.save_pretrained(tmp / "policy", safe_serialization=True)
        if critic is not None:
            critic.save(tmp / "critic.safetensors")
        torch.save(state, tmp / "trainer_state.pt")

    return save_dir(ckpt_root, iteration, write, keep)


def save_dir(ckpt_root: Path, iteration: int, write: Callable[[Path], None], keep: int = 2) -> Path:
    """`write(tmp)` fills a temp dir; it becomes checkpoint `iteration` atomically (see the module doc)."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{iteration:06d}"
    tmp = ckpt_root / f".tmp-{PREFIX}{iteration:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write(tmp)
        sizes = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(sizes, indent=1))
        _fsync_tree(tmp)
        if final.exists():  # re-saving the same iteration (e.g. the final one): replace atomically
            old = ckpt_root / f".old-{final.name}-{os.getpid()}"
            final.rename(old)
            try:
                tmp.rename(final)
            except BaseException:
                old.rename(final)  # put the previous copy back rather than lose the iteration
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = ckpt_root / ".latest.tmp"
    pointer.write_text(final.name)
    pointer.replace(ckpt_root / "latest")
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    if not ckpt_root.exists():
        return []
    dirs = [p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(dirs, key=lambda p: int(p.name[len(PREFIX):]))


def cleanup_partial(ckpt_root: Path) -> None:
    """Remove temp dirs left by a write that was killed. A previous copy set aside while re-saving the
    same iteration (`.old-iter_N-PID`) goes back into place if the new one never arrived."""
    if ckpt_root.exists():
        for p in ckpt_root.iterdir():
            if p.name.startswith(".old-") and p.is_dir():
                final = ckpt_root / p.name.removeprefix(".old-").rsplit("-", 1)[0]
                if final.name.startswith(PREFIX) and not final.exists():
                    p.rename(final)
                    continue
            if p.name.startswith((".tmp-", ".old-", ".latest.tmp")):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def verify(path: Path) -> str | None:
    """What is wrong with checkpoint dir `path`, or None. Checks presence and sizes, not contents."""
    manifest = path / MANIFEST
    if not manifest.is_file():  # written before manifests existed: the essentials must be there
        missing = [n for n in ("trainer_state.pt", "policy/config.json") if not (path / n).is_file()]
        return f"missing {', '.join(missing)}" if missing else None
    try:
        sizes = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable {MANIFEST} ({e})"
    for name, size in sizes.items():
        f = path / name
        if not f.is_file():
            return f"missing {name}"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, {size} were written"
    return None


def load_latest(ckpt_root: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, or None. A corrupt newest one falls back to the previous."""
    cleanup_partial(ckpt_root)
    for path in reversed(list_checkpoints(ckpt_root)):
        problem = verify(path)
        if problem is None:
            try:
                state = torch.load(path / "trainer_state.pt", weights_only=False)
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is skipped, loudly
                problem = f"unreadable trainer_state.pt ({e})"
        if problem is not None:
            print(f"rlreason: checkpoint {path} is damaged ({problem}); trying the previous one")
            continue
        return path, state
    return None
