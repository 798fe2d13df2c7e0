"""The Hydra groups of conf/ and their options, each with what it changes relative to the schema's defaults.

An option's changes are its YAML merged onto the schema (so `120` for a float reads as 120.0, as a run sees
it) and compared key by key with the schema's defaults; a value the option restates is no change. What an
option pulls in through its own defaults list (another option, `override /data: gsm8k`) is listed apart.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlreason.reference.keys import ROOT, show

CONF = ROOT / "conf"
LONG = 240  # an opening comment longer than this is summed up by its first sentence


@dataclass(frozen=True)
class Option:
    group: str  # algo, recipe, hydra/launcher
    name: str  # ppo
    about: str  # the file's opening comment
    path: str  # conf/algo/ppo.yaml
    includes: tuple[str, ...]  # other options it composes first: recipe/paper
    selects: tuple[str, ...]  # group choices it overrides: data=gsm8k
    changes: tuple[tuple[str, str], ...]  # (dotted key, value as shown) where it differs from the schema


def groups() -> dict[str, list[Option]]:
    """Every group under conf/ (hydra/launcher included) with its options, in name order."""
    out: dict[str, list[Option]] = {}
    for path in sorted(CONF.rglob("*.yaml")):
        rel = path.relative_to(CONF)
        if len(rel.parts) < 2:
            continue  # config.yaml, eval.yaml: primary configs, not options
        group = "/".join(rel.parts[:-1])
        out.setdefault(group, []).append(option(group, path.stem))
    return out


def about(path: Path) -> str:
    """A config file's opening comment as one paragraph, up to its first example command."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if text.strip().startswith("@package"):
            continue
        if text.startswith("   ") or not text.strip():  # an indented example command, or a blank comment line
            break
        lines.append(text.strip())
    text = " ".join(lines)
    if len(text) > LONG and (cut := text.find(". ")) > 0:
        text = text[: cut + 1]  # the first sentence: the file itself has the rest
    for tail in (", e.g.", " e.g.", " e.g.,", ":"):
        text = text.removesuffix(tail)
    return text


def option(group: str, name: str) -> Option:
    path = CONF / group / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    node = yaml.safe_load(text) or {}
    defaults = node.pop("defaults", []) if isinstance(node, dict) else []
    includes, selects = [], []
    for entry in defaults:
        if isinstance(entry, str):
            if entry != "_self_":
                includes.append(entry.lstrip("/") if entry.startswith("/") else f"{group}/{entry}")
        else:
            for key, value in entry.items():
                includes.append(f"{key}/{value}") if not key.startswith("override") else \
                    selects.append(f"{key.removeprefix('override').strip().lstrip('/')}={value}")
    if group.startswith("hydra/"):
        changes: list[tuple[str, str]] = []  # the launcher plugin's keys, not rlreason's schema
    else:
        glob = "@package _global_" in text.split("\n\n", 1)[0]
        changes = _changes(OmegaConf.load(path), None if glob else group)
    return Option(group, name, about(path), path.relative_to(ROOT).as_posix(), tuple(includes), tuple(selects),
                  tuple(changes))


@cache
def _schema() -> DictConfig:
    """The training schema with every group node at its dataclass's defaults (`???` where they must be set)."""
    from rlreason.config import Config

    hints = typing.get_type_hints(Config)
    nodes = {f.name: hints[f.name]() for f in fields(Config) if f.default is MISSING and is_dataclass(hints[f.name])}
    cfg = OmegaConf.structured(Config(**nodes))
    OmegaConf.set_struct(cfg.reward.weights, False)  # keyed by a reward function's components (register_configs)
    return cfg


def _changes(node: DictConfig, package: str | None) -> list[tuple[str, str]]:
    node.pop("defaults", None)
    hydra = node.pop("hydra", None) if package is None else None
    base = _schema()
    try:
        merged = OmegaConf.merge(base, {package: node} if package else node)
    except OmegaConfBaseException:  # keys the schema does not have (a group of Hydra's): as written
        return [(k, show(v)) for k, v in _leaves(OmegaConf.to_container(node, resolve=False),
                                                 f"{package}." if package else "").items()]
    before = _leaves(OmegaConf.to_container(base, resolve=False))
    out = [(k, show(v)) for k, v in _leaves(OmegaConf.to_container(merged, resolve=False)).items()
           if k not in before or before[k] != v]
    if hydra is not None:  # Hydra's own settings: no schema to compare with
        out += [(k, show(v)) for k, v in _leaves(OmegaConf.to_container(hydra, resolve=False), "hydra.").items()]
    return out


def _leaves(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted leaves of a nested dict; a schema field that is itself a dict (model.build) is one leaf."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in _dict_fields():
            out |= _leaves(v, f"{key}.")
        else:
            out[key] = v
    return out


@cache
def _dict_fields() -> frozenset[str]:
    from rlreason.reference.keys import schema_keys

    return frozenset(k.name for k in schema_keys() if k.type.startswith("dict"))


def run_defaults() -> list[str]:
    """conf/config.yaml's defaults list as group choices: algo=vineppo, ..., recipe=${model} (optional)."""
    node = yaml.safe_load((CONF / "config.yaml").read_text(encoding="utf-8"))
    out = []
    for entry in node.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                optional = key.startswith("optional ")
                out.append(f"{key.removeprefix('optional ')}={'null' if value is None else value}"
                           + (" (when conf/recipe/ has one)" if optional else ""))
    return out
