"""Environment steps in the grader's worker processes (rlreason/reward/pool.py), under reward.timeout_s.

A job is (record, seed, actions, expected): the observation, reward and done of the environment after
reset() and the actions, the last one being the step asked for ([] asks for reset()'s observation).
Workers are interchangeable, so an instance cannot be pinned to one: a worker keeps the instances it
stepped last (`_Cache`, keyed by the episode and its actions) and continues one when the job is the next
step of an episode it holds; else it builds a fresh instance, resets it and replays the earlier actions,
checking each observation against `expected` (the recorded ones). A job with `fresh=True` always
replays: VinePPO's continuations from a mid-episode state (rlreason/envs/credit.py), whose replay is
the point. The deadline is reward.timeout_s per step the job may take (1 + its actions).

A hung or crashing step is the pool's `timeout` / `error`; a replay whose observations differ from
the recorded ones is `mismatch` (an environment that is not deterministic in (record, seed, actions)).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from rlreason.envs.base import as_step
from rlreason.envs.load import load_class
from rlreason.reward.function import absolute
from rlreason.reward.pool import Pool

CACHE_SIZE = 256  # instances a worker keeps between jobs (one per episode in flight)


@dataclass(frozen=True)
class Job:
    record: dict
    seed: int
    actions: tuple[str, ...]
    expected: tuple[str, ...]  # the recorded observations: reset()'s, then one per action before the last
    fresh: bool = False  # replay from a fresh instance even when this worker holds the episode


@dataclass(frozen=True)
class Outcome:
    status: str  # ok | timeout | error | mismatch
    observation: str = ""
    reward: float | dict[str, float] = 0.0
    done: bool = False
    detail: str | None = None  # why, for the failures
    replay_s: float = 0.0  # the worker's seconds rebuilding the instance: constructor, reset(), replayed steps
    work_s: float = 0.0  # the worker's seconds on the whole job (replay_s and the step asked for)
    replayed: int = 0  # recorded actions it replayed


def _key(record: dict, seed: int, actions: tuple[str, ...]) -> str:
    return json.dumps([record, seed, actions], sort_keys=True, default=str)


class _Cache:
    def __init__(self) -> None:
        self.items: OrderedDict[str, Any] = OrderedDict()

    def take(self, key: str) -> Any:
        return self.items.pop(key, None)

    def put(self, key: str, env: Any) -> None:
        self.items[key] = env
        while len(self.items) > CACHE_SIZE:
            self.items.popitem(last=False)


def env_handler(spec: str):
    """Run in a worker: import the class once; answer each Job with ("ok", (obs, reward, done, cost)) or
    ("mismatch", why). A step's exception is the pool's `error` (its traceback). cost: (seconds
    rebuilding and replaying, seconds on the whole job, actions replayed), for the cost figures
    (Turns.timing, bench/multiturn.py)."""
    cls, cache = load_class(spec), _Cache()

    def play(job: Job) -> tuple[str, Any]:
        t0 = time.perf_counter()
        *before, last = job.actions or ("",)
        before = tuple(before) if job.actions else ()
        env = None if job.fresh or not job.actions else cache.take(_key(job.record, job.seed, before))
        rebuilt = env is None
        if rebuilt:
            env = cls(dict(job.record), job.seed)
            seen = [_observation(env.reset())]
            seen += [as_step(env.step(a)).observation for a in before]
            for i, (got, want) in enumerate(zip(seen, job.expected)):
                if got != want:
                    where = "reset()" if i == 0 else f"step {i} (after action {before[i - 1][:60]!r})"
                    return "mismatch", (f"replaying the episode from a fresh instance gave a different observation "
                                        f"at {where}: {got[:80]!r}, recorded {want[:80]!r} (an environment must be "
                                        "deterministic in (record, seed, actions): see docs/environments.md)")
            if not job.actions:  # reset only: the episode's first step may continue this instance
                cache.put(_key(job.record, job.seed, ()), env)
                spent = time.perf_counter() - t0
                return "ok", (seen[0], 0.0, False, (0.0, spent, 0))  # a reset is the episode's start, not a replay
        t1 = time.perf_counter()
        step = as_step(env.step(last))
        if not step.done:
            cache.put(_key(job.record, job.seed, job.actions), env)
        return "ok", (step.observation, step.reward, step.done, (t1 - t0 if rebuilt else 0.0,
                                                                 time.perf_counter() - t0, len(before) if rebuilt else 0))

    return play


def _observation(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"reset() returned {type(value).__name__}: expected the first observation as a str")
    return value


class EnvPool:
    """Steps of many episodes at once in `workers` processes, each within `timeout_s` per step."""

    def __init__(self, spec: str, *, timeout_s: float, workers: int, startup_timeout_s: float = 60.0):
        self.spec = absolute(spec)
        late = (f"the environment workers could not start: importing {self.spec} did not finish within "
                f"reward.startup_timeout_s={startup_timeout_s:g} s")
        self._pool = Pool(workers, timeout_s, env_handler, self.spec, name="rlreason-env",
                          startup_timeout_s=startup_timeout_s, late_start=late)
        self.timeout_s = timeout_s
        self.steps = 0  # env steps asked for (replayed ones not counted)
        self.replays = 0  # jobs that were asked to replay from a fresh instance

    def run(self, jobs: list[Job]) -> list[Outcome]:
        self.steps += len(jobs)
        self.replays += sum(j.fresh for j in jobs)
        results = self._pool.run(jobs, costs=[1 + len(j.actions) for j in jobs])
        out = []
        for status, payload in results:
            if status == "ok":  # the worker's own ("ok", step) | ("mismatch", why)
                status, payload = payload
            if status == "ok":
                obs, reward, done, (replay_s, work_s, replayed) = payload
                out.append(Outcome("ok", obs, reward, done, replay_s=replay_s, work_s=work_s, replayed=replayed))
            elif status == "timeout":
                out.append(Outcome("timeout", detail=f"an environment step took longer than reward.timeout_s="
                                                     f"{self.timeout_s:g} s"))
            else:
                out.append(Outcome(status, detail=str(payload)))
        return out

    def close(self) -> None:
        self._pool.close()
