"""Loading `env.cls` (PATH.py:NAME or module:NAME) and checking it before any compute.

The user's module is imported only in a spawned child (the check, before compute) and in the grading
workers (rlreason/envs/worker.py), never in the trainer: the import machinery and the child with its
deadline are reward.fn's (rlreason/reward/function.py). What the trainer needs from the class (its stop
strings and turn cap) comes back from the child as plain values.
"""

from __future__ import annotations

import inspect
from typing import Any

from rlreason.reward.function import _import, absolute, in_child


class EnvError(ValueError):
    """An env.cls that cannot be used; the message names the file or module and the problem."""


def load_class(spec: str) -> type:
    """The class `spec` names, checked: it has reset and step, and takes (record, seed). A SkyRL-gym class
    (`init` and `step`, no `reset`) is wrapped by rlreason.envs.skyrl.adapt (an optional extra)."""
    module, name, where = _import(spec, "env.cls", EnvError)
    cls = getattr(module, name, None)
    if cls is None:
        names = [n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_")]
        raise EnvError(f"env.cls: {where} has no {name!r} (it has {', '.join(sorted(names)) or 'no class'})")
    if not isinstance(cls, type):
        raise EnvError(f"env.cls: {where}:{name} is a {type(cls).__name__}, not a class")
    if callable(getattr(cls, "init", None)) and not callable(getattr(cls, "reset", None)):
        from rlreason.envs.skyrl import adapt  # skyrl_gym is optional: imported only for its classes

        cls = adapt(cls)
    for method, args in (("reset", (None,)), ("step", (None, ""))):
        fn = getattr(cls, method, None)
        if not callable(fn):
            raise EnvError(f"env.cls: {where}:{name} has no {method}() method (an environment needs reset() -> str "
                           "and step(action) -> (observation, reward, done): see docs/environments.md)")
        _bind(fn, args, f"{where}:{name}.{method}", "(self)" if method == "reset" else "(self, action: str)")
    _bind(cls, ({}, 0), f"{where}:{name}", "(record: dict, seed: int)")
    return cls


def _bind(fn: Any, args: tuple, what: str, form: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (a builtin): the first call tells
        return
    try:
        sig.bind(*args)
    except TypeError as e:
        raise EnvError(f"env.cls: {what}{sig} cannot be called as {form}: {e}") from None


def describe(spec: str) -> dict[str, Any]:
    """Load and check the class; its stop strings and turn cap as plain values (run in a child)."""
    cls = load_class(spec)
    stop, cap = getattr(cls, "stop", ("\n",)), getattr(cls, "max_turns", None)
    stop = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, tuple | list) or not all(isinstance(s, str) and s for s in stop):
        raise EnvError(f"env.cls: {spec}: stop={stop!r} must be a tuple of non-empty strings (the end-of-turn strings)")
    if cap is not None and not (isinstance(cap, int) and cap >= 1):
        raise EnvError(f"env.cls: {spec}: max_turns={cap!r} must be an int >= 1, or None")
    return {"stop": tuple(stop), "max_turns": cap}


_DESCRIBED: dict[str, dict[str, Any]] = {}


def inspect_env(spec: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """`describe(spec)` in a spawned child under reward.startup_timeout_s; EnvError with one line else."""
    spec = absolute(spec)
    if spec not in _DESCRIBED:  # validation runs twice per command (preflight, then Hydra's main)
        _DESCRIBED[spec] = in_child(describe, (spec,), setting="env.cls", spec=spec, timeout_s=timeout_s,
                                    error=EnvError)
    return _DESCRIBED[spec]
