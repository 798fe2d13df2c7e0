"""Turn `model.path` into something `from_pretrained` and vLLM can open.

`builtin:tiny-arith` (model=tiny), `builtin:tiny-countdown` (model=tiny_countdown) and
`builtin:tiny-chat` (model=tiny_chat) are the tiny models, each identified by a hash of everything that decides its weights (the `build:` dict, its task's
data spec, the build code's version). The committed checkpoint is used when its recorded hash matches;
otherwise the model is built once into the cache and reused from there, so editing conf/model/tiny*.yaml
can never silently run the old weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlreason.model.tasks import task_of
from rlreason.model.tiny import ASSETS, YAMLS, assets_dir, builtin_key, kind_of

# Bump when a change to rlreason/model/{tiny,tasks,build}.py changes what a build produces.
CODE_VERSION = 1
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "org/name", or a legacy bare "gpt2"
log = logging.getLogger(__name__)


def plain(build: Mapping[str, Any]) -> dict[str, Any]:
    """A `build:` dict as plain Python values, whether it came from Hydra (DictConfig) or a dict."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(build, resolve=True) if isinstance(build, DictConfig) else dict(build)  # type: ignore[return-value]


def config_hash(build: Mapping[str, Any]) -> str:
    build = plain(build)
    task, _ = task_of(build), kind_of(build)  # both checked: an unknown one is an error, not another hash
    for key, default in (("task", "arith"), ("kind", "char")):
        if build.get(key) == default:  # the default, spelled out: the same model as without the key
            del build[key]
    payload = {"build": build, task.name: asdict(task.spec), "code_version": CODE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def committed_hash(directory: Path = ASSETS) -> str | None:
    info = directory / "build_info.json"
    return json.loads(info.read_text())["hash"] if info.is_file() else None


def resolve_model_path(model_cfg: Any, cache_dir: str | Path) -> str:
    """A local dir or hub id for `model_cfg.path`, building the tiny model first if needed."""
    path: str = model_cfg.path
    if path.startswith("builtin:"):
        builtins = [f"builtin:tiny-{key}" for key in YAMLS]
        if path not in builtins:
            raise ValueError(f"model.path={path!r}: the only builtin models are {', '.join(builtins)}")
        if not model_cfg.build:
            raise ValueError(f"model.path={path} needs a model.build dict (see conf/model/tiny*.yaml)")
        build = plain(model_cfg.build)
        if f"builtin:tiny-{builtin_key(build)}" != path:
            raise ValueError(f"model.path={path} but model.build is for task {task_of(build).name!r}"
                             f"{' (kind chat)' if builtin_key(build).startswith('chat') else ''}: "
                             f"it builds builtin:tiny-{builtin_key(build)}")
        return _tiny(build, Path(cache_dir).expanduser())
    local = Path(path).expanduser()
    if local.is_dir():
        return str(local)
    if path.startswith((".", "/", "~")) or not HUB_ID.fullmatch(path):
        raise FileNotFoundError(f"model.path={path!r} is not an existing directory, nor a hub id like 'org/name'")
    return path


def _tiny(build: dict[str, Any], cache_dir: Path) -> str:
    digest, name = config_hash(build), f"tiny-{builtin_key(build)}"
    committed = assets_dir(builtin_key(build))
    if committed_hash(committed) == digest:
        return str(committed)
    cached = cache_dir / f"{name}-{digest}"
    if (cached / "build_info.json").is_file():
        return str(cached)
    log.warning("%s: the committed checkpoint was built from another config (hash %s, wanted %s); "
                "building into %s (minutes on CPU, once)", name, committed_hash(committed), digest, cached)
    from rlreason.model.build import build as run_build  # torch + transformers: only when building

    cache_dir.mkdir(parents=True, exist_ok=True)
    run_build(build, cached, replace=False)
    return str(cached)
