"""Find the run dirs of a sweep and read what each holds: config, metrics rows, per-question eval rewards
and training solve rates (from stats.sqlite, read-only, so a sweep still being written can be read)."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlreason.curriculum.store import SolveFractions, StatsStore, StoreError

# Cumulative seconds per phase are logged as time/<phase>; these are not training time (eval, checkpoint)
# or not cumulative (sync_last_s: the last iteration's sync alone).
NOT_TRAINING = {"time/eval", "time/checkpoint", "time/sync_last_s", "time/train_wall"}
# Settings that may differ between the seeds of one group without making them different experiments.
SEED_KEYS = ("seed", "run_name", "resume", "cache_dir", "logger.", "trainer.progress")


class SweepError(Exception):
    """Nothing to report on (no run dirs, unreadable files); the CLI prints it and exits 2."""


@dataclass
class Run:
    path: Path
    cfg: DictConfig
    rows: list[dict[str, Any]]  # metrics.jsonl, one per iteration, in order
    # phase (eval | eval_greedy) -> iteration -> {question id: mean reward of its attempts}
    per_question: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    solve: list[SolveFractions] = field(default_factory=list)  # phase train, per iteration
    # phase selection (a curriculum's candidate pool, rolled out to score it), per iteration
    pool_solve: list[SolveFractions] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    store_note: str = ""  # why the store could not be read, if it could not
    by: tuple[str, ...] = ()  # more config keys that tell groups apart (e.g. learner.lr in a tuning sweep)

    @property
    def algo(self) -> str:
        return str(self.cfg.algo.name)

    @property
    def curriculum(self) -> str:
        return str(self.cfg.curriculum.name)

    @property
    def group(self) -> str:
        extra = "".join(f" {k}={OmegaConf.select(self.cfg, k)}" for k in self.by)
        return f"{self.algo}/{self.curriculum}{extra}"

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @property
    def samples(self) -> int:  # n of mean@n
        return int(self.cfg.trainer.eval_samples)

    @property
    def last_iteration(self) -> int:
        return self.rows[-1]["iteration"] if self.rows else 0

    @property
    def planned_iterations(self) -> int:
        return int(self.cfg.trainer.iterations)

    @property
    def finished(self) -> bool:
        return self.last_iteration >= self.planned_iterations

    @property
    def eval_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if "eval/accuracy" in r]

    @property
    def questions(self) -> int | None:
        """Held-out questions per eval: from the store, else summary.json, else the config."""
        for phase in ("eval_greedy", "eval"):
            if self.per_question.get(phase):
                return len(next(iter(self.per_question[phase].values())))
        if self.summary and self.summary.get("eval_questions"):
            return int(self.summary["eval_questions"])
        d, t = self.cfg.data, self.cfg.trainer
        caps = [x for x in (d.arith.n_test if d.name == "arith" else d.get("max_test"), t.eval_max_questions) if x]
        return min(caps) if caps else None


def train_seconds(row: dict[str, Any]) -> float:
    """Training wall-clock up to this row: `time/train_wall` where the run logged it (since 2026-12-07; one
    step off the phases overlap, so only the wall-clock is right), else the cumulative time/* phases except
    eval and checkpoint. (The eval's grading is in eval; runs older than commit d22691c booked it under
    grading, < 0.1% on arith.)"""
    if row.get("time/train_wall") is not None:
        return float(row["time/train_wall"])
    return float(sum(v for k, v in row.items() if k.startswith("time/") and k not in NOT_TRAINING))


def find_run_dirs(dirs: list[Path]) -> list[Path]:
    """Every dir under `dirs` (any depth, symlinks followed) holding .hydra/config.yaml and metrics.jsonl;
    each run once (by real path) even when linked from several places."""
    found: dict[Path, Path] = {}
    seen: set[Path] = set()
    for top in dirs:
        for root, subdirs, files in os.walk(top, followlinks=True):
            real = Path(root).resolve()
            if real in seen:  # a symlink loop, or the same dir reached twice
                subdirs[:] = []
                continue
            seen.add(real)
            subdirs[:] = sorted(d for d in subdirs if d not in ("checkpoints", ".hydra"))
            if "metrics.jsonl" in files and (Path(root) / ".hydra" / "config.yaml").is_file():
                found.setdefault(real, Path(root))
    return sorted(found.values(), key=str)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows by iteration (the last row wins if one was logged twice); a line cut off by a
    run still writing is skipped."""
    by_it: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "iteration" in row:
            by_it[int(row["iteration"])] = row
    return [by_it[k] for k in sorted(by_it)]


def read_store(run: Run) -> None:
    path = run.path / "stats.sqlite"
    try:
        with StatsStore(path, None, readonly=True) as store:
            for phase in ("eval", "eval_greedy"):
                rows = store.con.execute(
                    "SELECT iteration, question, AVG(reward) FROM attempts WHERE phase = ? "
                    "GROUP BY iteration, question ORDER BY iteration", (phase,))
                table: dict[int, dict[str, float]] = {}
                for it, q, r in rows:
                    table.setdefault(it, {})[q] = r
                run.per_question[phase] = table
            run.solve = store.solve_fractions("train")
            run.pool_solve = store.solve_fractions("selection")
    except (StoreError, sqlite3.Error) as e:
        run.store_note = str(e)


def load_run(path: Path, by: tuple[str, ...] = ()) -> Run:
    cfg = OmegaConf.load(path / ".hydra" / "config.yaml")
    run = Run(path, cfg, read_metrics(path / "metrics.jsonl"), by=by)
    if (path / "summary.json").is_file():
        run.summary = json.loads((path / "summary.json").read_text())
    read_store(run)
    return run


def load_runs(dirs: list[Path], by: tuple[str, ...] = ()) -> list[Run]:
    missing = [str(d) for d in dirs if not Path(d).is_dir()]
    if missing:
        raise SweepError(f"not a directory: {', '.join(missing)}")
    paths = find_run_dirs([Path(d) for d in dirs])
    if not paths:
        raise SweepError(f"no run dirs (a .hydra/config.yaml beside a metrics.jsonl) under {', '.join(map(str, dirs))}")
    runs = [load_run(p, by) for p in paths]
    empty = [str(r.path) for r in runs if not r.eval_rows]
    runs = [r for r in runs if r.eval_rows]
    if not runs:
        raise SweepError(f"no run has an eval row in metrics.jsonl yet: {', '.join(empty)}")
    # A --by key names an algo's groups only where that algo's runs differ in it: PPO runs carry
    # VinePPO's algo.mc.* keys too, and "ppo/uniform algo.mc.v0=mc" would name a knob PPO never reads.
    for r in runs:
        same = [x for x in runs if x.algo == r.algo]
        r.by = tuple(k for k in by if len({str(OmegaConf.select(x.cfg, k)) for x in same}) > 1)
    return runs


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """{"algo/curriculum": its runs by seed}, groups in sorted order."""
    groups: dict[str, list[Run]] = {}
    for r in sorted(runs, key=lambda r: (r.group, r.seed, str(r.path))):
        groups.setdefault(r.group, []).append(r)
    return groups


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: node}


def config_warnings(group: str, runs: list[Run]) -> list[str]:
    """What makes the runs of one group more than seeds of one experiment: other settings, repeated seeds."""
    flat = [_flat(OmegaConf.to_container(r.cfg, resolve=False)) for r in runs]
    keys = sorted(set().union(*flat))
    differ = [k for k in keys if not k.startswith(SEED_KEYS) and len({json.dumps(f.get(k)) for f in flat}) > 1]
    out = []
    if differ:
        shown = "; ".join(f"{k} = {', '.join(sorted({json.dumps(f.get(k)) for f in flat}))}" for k in differ[:6])
        more = f" (+{len(differ) - 6} more)" if len(differ) > 6 else ""
        out.append(f"group {group}: its runs differ in more than the seed: {shown}{more}; "
                   "put one config per group in a sweep dir")
    seeds = [r.seed for r in runs]
    if len(set(seeds)) < len(seeds):
        out.append(f"group {group}: repeated seeds {sorted(seeds)}; its spread is not a spread over seeds")
    # One step off the phases overlap, so their sum overstates the wall-clock a run without train_wall gets.
    summed = [r.seed for r in runs if (OmegaConf.select(r.cfg, "trainer.async_level") or 0) > 0
              and r.rows and "time/train_wall" not in r.rows[-1]]
    if summed:
        out.append(f"group {group}: seeds {summed} ran one step off before runs logged time/train_wall; their "
                   "training seconds are the phases' sum, which overstates them (the phases overlap)")
    return out


@cache
def _levels(data_json: str) -> dict[str, int] | None:
    from rlreason.data.loaders import load_split

    test = load_split(OmegaConf.create(json.loads(data_json)), "test")
    levels = {q.id: q.level for q in test if q.level is not None}
    return levels or None


def question_levels(run: Run) -> tuple[dict[str, int] | None, str]:
    """{test question id: level (arith chain length, MATH level)}, cached per data config; None and why
    when the data cannot be loaded here (a hub dataset offline, a file on another machine)."""
    data = run.cfg.data
    if data.get("source") == "hub":
        return None, f"data {data.name} comes from the hub; levels not loaded"
    try:
        levels = _levels(json.dumps(OmegaConf.to_container(data, resolve=True), sort_keys=True))
    except Exception as e:  # noqa: BLE001 -- a missing data file only costs the level panel
        return None, f"could not load the {data.name} test questions ({type(e).__name__}: {e})"
    return levels, "" if levels else f"the {data.name} test questions have no levels"
