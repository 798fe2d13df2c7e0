"""Your own reward: `reward.fn=PATH.py:NAME` or `reward.fn=package.module:NAME`.

    def NAME(response: str, record: dict) -> float | dict[str, float]

`response` is the model's text (the prompt not included; for VinePPO's Monte-Carlo continuations, the
prefix's text plus the continuation, a whole response). `record` is the question's row as read from the
JSONL / parquet / hub dataset, every field (Countdown's generator builds {nums, target, use_all}; a
question without a row, arith's, gives {id, problem, answer}).
A dict's components are summed with `reward.weights` (1 each by default) into the reward, and each is
logged as `reward/<name>` (training) and `eval/reward/<name>`.

Success, what accuracy, pass@k, maj@k and the curriculum's p-hat count: the component `correct` when the
function returns one (a 0/1 flag, success when >= 0.5), else reward >= `reward.success_threshold`.

`reward.batched=true`: NAME(responses: list[str], records: list[dict]) -> list[float | dict], called on
chunks of `reward.batch_size` distinct responses, for a check that is cheaper in bulk.

Checked before any compute (`check`, from validation): the module is imported and the name and
signature checked in a spawned process under the deadline `reward.startup_timeout_s`, never in the
trainer's own; each grading worker imports it again under the same deadline. Robust as the
built-in grader: every call runs in the grader's worker processes (pool.py) under the
hard deadline `reward.timeout_s` per response (a batch: per response in it). A hang is a `timeout`
verdict, an exception or a value that is not a finite number an `error` verdict; both reward 0. What
the function returns is made plain floats in the worker (a float subclass, numpy's scalars) or judged
there: the trainer cannot rebuild an instance of a class from the user's file (a dataclass, an enum). A
truncated response (it hit max_new_tokens) is graded `truncated`, reward 0, without a call, as the
built-in checkers do. Each distinct (question, response) of a grading call is graded once: VinePPO's
continuations repeat a lot. Nothing evaluates model text unless your function does: parse it
(rlreason/reward/countdown.py shows how, with a whitelist parser and exact fractions).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import multiprocessing as mp
import numbers
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlreason.reward.grader import Verdict
from rlreason.reward.pool import Pool, die_with_parent, start


class RewardFnError(ValueError):
    """A reward.fn that cannot be used; the message names the file or module and the problem."""


def _import(spec: str, setting: str = "reward.fn", error: type[ValueError] = RewardFnError
            ) -> tuple[Any, str, str]:
    """(module, name, where) for `PATH.py:NAME` or `package.module:NAME`; `setting` names the config key in
    the messages (env.cls loads its classes here too), raised as `error`."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise error(f"{setting}={spec!r}: expected PATH.py:NAME or package.module:NAME")
    if target.endswith(".py") or "/" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise error(f"{setting}: {path}: no such file")
        key = f"rlreason_user_reward_{abs(hash(str(path)))}"
        if key in sys.modules:
            return sys.modules[key], name, str(path)
        mod_spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
        try:
            mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException as e:  # SystemExit and KeyboardInterrupt too: a module must not end the run
            raise error(f"{setting}: {path} failed to import: {_last_line(e)}") from e
        sys.modules[key] = module
        return module, name, str(path)
    try:
        return importlib.import_module(target), name, target
    except BaseException as e:
        raise error(f"{setting}: module {target} failed to import: {_last_line(e)}") from e


def _last_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0]


def load(spec: str, batched: bool = False) -> Callable:
    """The function `spec` names, checked: it exists, is callable and takes (response, record)."""
    module, name, where = _import(spec)
    fn = getattr(module, name, None)
    if fn is None:
        names = [n for n in vars(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise RewardFnError(f"reward.fn: {where} has no {name!r} (it has {', '.join(sorted(names)) or 'nothing callable'})")
    if not callable(fn):
        raise RewardFnError(f"reward.fn: {where}:{name} is a {type(fn).__name__}, not a function")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: let the first call tell
        return fn
    args = ([], []) if batched else ("", {})
    try:
        sig.bind(*args)
    except TypeError as e:
        form = "(responses: list[str], records: list[dict])" if batched else "(response: str, record: dict)"
        raise RewardFnError(f"reward.fn: {where}:{name}{sig} cannot take {form}: {e}") from None
    return fn


def absolute(spec: str) -> str:
    """`spec` with its file path made absolute (a module path stays as it is)."""
    target, _, name = spec.rpartition(":")
    if target.endswith(".py") or "/" in target:
        return f"{Path(target).expanduser().resolve()}:{name}"
    return spec


def _record(item: Any) -> dict:
    """The row a question is graded against (a bare gold answer string becomes {"answer": it})."""
    return {"answer": item} if isinstance(item, str) else item.row()


_CHECKED: set[tuple[str, bool]] = set()  # specs that passed `check` in this process


def _check_in_child(conn, target: Callable[..., Any], args: tuple, setting: str, spec: str, parent: int) -> None:
    die_with_parent(parent)  # a hung import must not outlive a killed trainer
    try:
        conn.send(("ok", target(*args)))
    except ValueError as e:  # the loader's own one-line error (RewardFnError, EnvError)
        conn.send(("problem", str(e)))
    except BaseException as e:  # noqa: BLE001 (whatever the import raised is the user's to read)
        conn.send(("problem", f"{setting}: {spec}: {_last_line(e)}"))


def in_child(target: Callable[..., Any], args: tuple, *, setting: str, spec: str, timeout_s: float,
             error: type[ValueError] = RewardFnError) -> Any:
    """`target(*args)` (a top-level function that imports the user's module and checks it) in a spawned
    process under the deadline `timeout_s` (reward.startup_timeout_s): the user's module is imported (its
    top-level code run) only where a hang or a crash cannot take the trainer with it. Returns what it
    returned (a plain value), or raises `error` with one line naming the file and the problem."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_check_in_child, args=(child, target, args, setting, spec, os.getpid()), daemon=True,
                       name="rlreason-reward-check")
    start(proc)
    child.close()
    try:
        status, value = parent.recv() if parent.poll(timeout_s) else ("problem", (
            f"{setting}: importing {spec} did not finish within reward.startup_timeout_s={timeout_s:g} s "
            "(a hang at import? an import that is only slow needs a larger reward.startup_timeout_s)"))
    except EOFError:  # the pipe closes as the child exits, which may be before it can be reaped
        proc.join(timeout=10)
        status, value = "problem", f"{setting}: the process importing {spec} died (exit code {proc.exitcode})"
    finally:
        proc.kill()
        proc.join()
        parent.close()
    if status == "problem":
        raise error(value)
    return value


def check(spec: str, batched: bool = False, timeout_s: float = 60.0) -> None:
    """`load`'s checks, run in a spawned process under the deadline `timeout_s` (`in_child`).
    RewardFnError with one line naming the file and the problem."""
    if (spec, batched) in _CHECKED:  # validation runs twice per command (preflight, then Hydra's main)
        return
    in_child(_load_only, (spec, batched), setting="reward.fn", spec=spec, timeout_s=timeout_s)
    _CHECKED.add((spec, batched))


def _load_only(spec: str, batched: bool) -> None:
    load(spec, batched)  # the function itself cannot be sent back: the check is that it loads


def _handler(arg: tuple[str, bool]) -> Callable[[Any], Any]:
    """Run in a worker: import the function once, then call it on each job. Its value is checked and made
    plain here (`_plain`), as ("ok", float | dict[str, float]) or ("error", why), a list of them per
    batch: an instance of a class from the user's file pickles under this process's private module name
    (`_import`), which the trainer cannot import, and unpickling it there would fail."""
    spec, batched = arg
    fn = load(spec, batched)
    if not batched:
        return lambda job: _plain(fn(*job))

    def call(job: tuple[list[str], list[dict]]) -> list[tuple[str, Any]]:
        out, n = fn(*job), len(job[0])
        if not (isinstance(out, list | tuple) and len(out) == n):
            return [("error", f"the batched reward function returned {_describe(out)} for {n} responses: "
                              f"expected a list of {n} values")] * n
        return [_plain(v) for v in out]

    return call


def _plain(value: Any) -> tuple[str, Any]:
    """("ok", a float or a dict of floats) for a usable reward value, else ("error", why)."""
    if isinstance(value, dict):
        parts = {str(k): _number(v) for k, v in value.items() if isinstance(k, str)}
        if value and len(parts) == len(value) and None not in parts.values():
            return "ok", parts
        return "error", (f"returned {_describe(value)}: a dict's values must be finite numbers, keyed by "
                         "component name")
    if (number := _number(value)) is None:
        return "error", f"returned {_describe(value)}: expected a finite float or a dict of floats"
    return "ok", number


def _number(v: Any) -> float | None:
    """`v` as a plain float when it is a finite real number, else None. numbers.Real: numpy's scalars and a
    float subclass too; bool is an int, so True / False read as 1 / 0."""
    if not isinstance(v, numbers.Real):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):  # an int past float's range, a broken __float__
        return None
    return f if math.isfinite(f) else None


def _last_line_of(text: str) -> str | None:
    """What maj@k votes over for a reward function: the response's last non-empty line (up to 200 chars)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[-1][:200] if lines and lines[-1] else None


class FunctionGrader:
    """The Grader interface (`grade(responses, questions, truncated) -> [Verdict]`) over a user function."""

    def __init__(self, spec: str, *, weights: dict[str, float] | None = None, success_threshold: float = 1.0,
                 timeout_s: float = 5.0, workers: int = 2, batched: bool = False, batch_size: int = 64,
                 startup_timeout_s: float = 60.0):
        spec = absolute(spec)  # the workers import the same file whatever their working directory
        self.spec, self.batched, self.batch_size = spec, batched, batch_size
        self.weights, self.success_threshold = dict(weights or {}), success_threshold
        late = (f"the reward workers could not start: importing {spec} did not finish within "
                f"reward.startup_timeout_s={startup_timeout_s:g} s")
        self._pool = Pool(workers, timeout_s, _handler, (spec, batched), name="rlreason-reward",
                          startup_timeout_s=startup_timeout_s, late_start=late)
        self.calls = 0  # distinct responses the function was asked about (after dedup)

    def grade(self, responses: list[str], golds: list[Any], truncated: list[bool] | None = None) -> list[Verdict]:
        """`golds`: the Questions graded (their `record` is what the function reads)."""
        truncated = truncated if truncated is not None else [False] * len(responses)
        if not len(responses) == len(golds) == len(truncated):
            raise ValueError(f"grade: {len(responses)} responses, {len(golds)} questions, {len(truncated)} flags")
        verdicts: list[Verdict | None] = [None] * len(responses)
        distinct: dict[tuple[str, str], list[int]] = {}
        for i, (text, q, cut) in enumerate(zip(responses, golds, truncated)):
            if cut:
                verdicts[i] = Verdict(0.0, "truncated")
            else:
                distinct.setdefault((q if isinstance(q, str) else q.id, text), []).append(i)
        keys = list(distinct)
        records = [_record(golds[distinct[k][0]]) for k in keys]
        self.calls += len(keys)
        for key, verdict in zip(keys, self._call([k[1] for k in keys], records)):
            for i in distinct[key]:
                verdicts[i] = verdict
        return verdicts  # type: ignore[return-value]

    def _call(self, texts: list[str], records: list[dict]) -> list[Verdict]:
        # The pool's ("ok", payload) carries the worker's own ("ok", value) | ("error", why): see `_handler`.
        if not self.batched:
            results = self._pool.run(list(zip(texts, records)))
            return [self._verdict(t, *(p if s == "ok" else (s, p))) for t, (s, p) in zip(texts, results)]
        chunks = [range(i, min(i + self.batch_size, len(texts))) for i in range(0, len(texts), self.batch_size)]
        results = self._pool.run([([texts[i] for i in c], [records[i] for i in c]) for c in chunks],
                                 costs=[len(c) for c in chunks])
        out: list[Verdict] = []
        for c, (status, payload) in zip(chunks, results):
            out += [self._verdict(texts[i], *(payload[j] if status == "ok" else (status, payload)))
                    for j, i in enumerate(c)]
        return out

    def _verdict(self, text: str, status: str, value: Any) -> Verdict:
        if status == "timeout":
            return Verdict(0.0, "timeout", detail=f"no answer within reward.timeout_s={self._pool.timeout_s} s")
        if status == "error":
            return Verdict(0.0, "error", detail=value)
        extracted = _last_line_of(text)
        if isinstance(value, dict):  # plain floats by name, checked in the worker
            total = sum(self.weights.get(k, 1.0) * v for k, v in value.items())
            ok = value["correct"] >= 0.5 if "correct" in value else total >= self.success_threshold
            return Verdict(total, "correct" if ok else "wrong", extracted, value)
        return Verdict(value, "correct" if value >= self.success_threshold else "wrong", extracted)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> FunctionGrader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _describe(v: Any) -> str:
    try:
        text = repr(v)
    except Exception as e:  # noqa: BLE001 (a user's class's __repr__)
        text = f"<a value whose repr raised {type(e).__name__}>"
    return f"{text[:80] + '...' if len(text) > 80 else text} ({type(v).__name__})"
