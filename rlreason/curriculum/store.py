"""Per-attempt statistics of a run, in SQLite (`stats.sqlite` in the run dir).

One row per sampled response: which question, when (iteration, policy version), why (phase), how it
went (reward, success, length). The curriculum and the solve-rate plots read success (the `correct`
verdict, 1/0): equal to the reward for the built-in 0/1 checkers, not for a reward function's partial
credit. Stores of schema 1 (no success column, every reward 0/1) are upgraded on opening for writing.

Durability: attempts are buffered in memory and written by `commit(iteration)` in one transaction
(WAL, synchronous=FULL), so a run killed at any moment loses at most the iteration in flight. On
resume the loop calls `truncate_after(last checkpointed iteration)` so a redone iteration is never
stored twice.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rlreason.rollout import Group

SCHEMA_VERSION = 2
# eval: the sampled eval responses (eval_samples per question); eval_greedy: the greedy one (its reward per
# question is what a bootstrap over questions resamples, experiments/sweep/)
PHASES = ("selection", "train", "eval", "eval_greedy")

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE attempts (
    question TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    phase TEXT NOT NULL,
    reward REAL NOT NULL,
    length INTEGER NOT NULL,
    policy_version INTEGER NOT NULL,
    success REAL NOT NULL
);
-- Every query filters on iteration (and phase) and groups by question: a covering index answers them
-- without touching the table.
CREATE INDEX attempts_by_iteration ON attempts (iteration, phase, question, success, reward);
CREATE INDEX attempts_by_question ON attempts (question, iteration);
-- Which questions the curriculum considered (pool) and kept (selected) at each iteration.
CREATE TABLE selections (iteration INTEGER NOT NULL, question TEXT NOT NULL, selected INTEGER NOT NULL);
CREATE INDEX selections_by_iteration ON selections (iteration, question);
"""


class StoreError(RuntimeError):
    """A stats store that cannot be used as asked; the message says which file and why."""


@dataclass(frozen=True)
class Attempt:
    question_id: str
    iteration: int
    phase: str  # selection | train | eval | eval_greedy
    reward: float
    length: int  # response tokens
    policy_version: int | None = None  # None -> the iteration
    success: float | None = None  # 1.0 solved, 0.0 not; None -> the reward (a 0/1 checker's)


@dataclass(frozen=True)
class QuestionStat:
    p: float  # (decay-weighted) success rate
    n: int  # attempts counted
    last: int = -1  # the latest iteration among them


@dataclass(frozen=True)
class SolveFractions:
    iteration: int
    all_solved: float  # share of questions whose attempts were all correct
    none_solved: float  # ... all wrong
    questions: int


@dataclass(frozen=True)
class SelectionLearnability:
    iteration: int
    pool: float  # mean p(1-p) over the questions considered
    selected: float  # ... over those kept for training


def attempts_from_groups(groups: list[Group], iteration: int, phase: str,
                         policy_version: int | None = None) -> list[Attempt]:
    return [Attempt(ep.question.id, iteration, phase, float(ep.reward), len(ep.response_ids), policy_version,
                    float(ep.solved)) for group in groups for ep in group]


def _inspect(path: Path) -> dict[str, str] | None:
    """The meta table of an existing file, read without writing to it; None if there is nothing yet."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:  # created, then killed before the schema transaction committed
                return None
            if "meta" not in tables:
                raise StoreError(f"{path}: a SQLite file but not an rlreason stats store (no meta table)")
            return dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: not a readable SQLite stats store ({e})") from e


def _check_meta(path: Path, meta: dict | None, run_id: str | None, also: tuple[str, ...]) -> str:
    """An existing store's schema and owner against this run's; returns the column success is read from."""
    if meta is None:
        return "success"
    if meta.get("schema_version") == "1":  # before the success column: every reward was 0/1
        success = "reward"
    elif meta.get("schema_version") != str(SCHEMA_VERSION):
        raise StoreError(f"{path}: schema version {meta.get('schema_version')!r}, this code "
                         f"reads {SCHEMA_VERSION}; use a new run dir or convert the store")
    else:
        success = "success"
    if run_id is not None and meta.get("run_id") not in (run_id, *also):
        raise StoreError(f"{path}: belongs to run {meta.get('run_id')!r}, not {run_id!r}; "
                         "a run dir holds one run's stats (another run_name wrote it, or a store "
                         "from before 2026-12-07 was moved: those are bound to the dir they began in)")
    return success


def check_store(path: str | Path, run_id: str, also: tuple[str, ...] = ()) -> None:
    """StatsStore's checks of an existing store, without opening it: a run makes them before any compute."""
    _check_meta(Path(path), _inspect(Path(path)), run_id, also)


class StatsStore:
    def __init__(self, path: str | Path, run_id: str | None, *, readonly: bool = False,
                 also: tuple[str, ...] = ()):
        """Open or create the store of run `run_id`; readonly=True reads an existing store (any run's
        when run_id is None). `also`: older ids of the same run that an existing store may carry."""
        if run_id is None and not readonly:
            raise StoreError("a writable stats store needs a run_id")
        self.path, self.run_id, self.readonly = Path(path), run_id, readonly
        self._buffer: list[Attempt] = []
        self._selections: list[tuple[int, str, int]] = []
        # Check before opening for writing: a foreign or broken file must be left byte-for-byte alone.
        meta = _inspect(self.path)
        self._success = _check_meta(self.path, meta, run_id, also)  # the column the queries read success from
        if meta is None and readonly:
            raise StoreError(f"{self.path}: no stats store to read")
        if readonly:  # mode=ro: never writes, not even a WAL checkpoint on close
            self.con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            return
        # explicit transactions; trainer.async_level=1 reads history from the producer's thread, never while
        # the loop's thread uses the connection (rlreason/trainer/produce.py)
        self.con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.execute("PRAGMA synchronous = FULL")
        if meta is not None and meta.get("schema_version") == "1":
            with self._transaction():
                self.con.execute("ALTER TABLE attempts ADD COLUMN success REAL NOT NULL DEFAULT 0")
                self.con.execute("UPDATE attempts SET success = reward")
                self.con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            self._success = "success"
        if meta is None:
            with self._transaction():
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        self.con.execute(stmt)
                self.con.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("run_id", run_id), ("last_committed", "-1")])

    # -- writing ------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The connection is in autocommit mode; IMMEDIATE takes the write lock up front.
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def add(self, attempts: list[Attempt]) -> None:
        for a in attempts:
            if a.phase not in PHASES:
                raise ValueError(f"unknown phase {a.phase!r}; one of {', '.join(PHASES)}")
        self._buffer.extend(attempts)

    def record_selection(self, iteration: int, pool: list[str], selected: list[str]) -> None:
        """Buffer which questions the curriculum considered and which it kept at `iteration`."""
        chosen = set(selected)
        self._selections += [(iteration, q, int(q in chosen)) for q in dict.fromkeys([*pool, *selected])]

    def commit(self, iteration: int) -> None:
        """Write everything buffered, and mark `iteration` complete, in one transaction."""
        last = self.last_committed_iteration()
        if last is not None and iteration <= last:
            raise StoreError(f"{self.path}: iteration {iteration} is already committed (last {last}); "
                             "call truncate_after() on resume before redoing iterations")
        if any(a.iteration > iteration for a in self._buffer):
            raise StoreError(f"attempts of a later iteration buffered while committing {iteration}")
        with self._transaction():
            self.con.executemany("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?)", [
                (a.question_id, a.iteration, a.phase, a.reward, a.length,
                 a.iteration if a.policy_version is None else a.policy_version,
                 a.reward if a.success is None else a.success) for a in self._buffer])
            self.con.executemany("INSERT INTO selections VALUES (?, ?, ?)", self._selections)
            self.con.execute("UPDATE meta SET value = ? WHERE key = 'last_committed'", (str(iteration),))
        self._buffer, self._selections = [], []

    def truncate_after(self, iteration: int) -> None:
        """Forget iterations > `iteration` (committed or buffered): the resume point of a killed run."""
        with self._transaction():
            self.con.execute("DELETE FROM attempts WHERE iteration > ?", (iteration,))
            self.con.execute("DELETE FROM selections WHERE iteration > ?", (iteration,))
            self.con.execute("UPDATE meta SET value = MIN(CAST(value AS INTEGER), ?) WHERE key = 'last_committed'",
                             (max(iteration, -1),))
        self._buffer = [a for a in self._buffer if a.iteration <= iteration]
        self._selections = [s for s in self._selections if s[0] <= iteration]

    def last_committed_iteration(self) -> int | None:
        (value,) = self.con.execute("SELECT value FROM meta WHERE key = 'last_committed'").fetchone()
        return None if int(value) < 0 else int(value)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> StatsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries (committed rows only) --------------------------------------------------------------

    @staticmethod
    def _where(phase: str | None, since: int | None, until: int | None = None) -> tuple[str, list]:
        clauses, args = ["1"], []
        if phase is not None:
            clauses.append("phase = ?")
            args.append(phase)
        if since is not None:
            clauses.append("iteration >= ?")
            args.append(since)
        if until is not None:
            clauses.append("iteration <= ?")
            args.append(until)
        return " AND ".join(clauses), args

    def question_stats(self, current_iter: int, window: int | None = None, decay: float | None = None,
                       phase: str | None = None, until: int | None = None) -> dict[str, QuestionStat]:
        """p-hat per question from attempts younger than `window` iterations (age = current_iter - iter),
        each weighted decay**age when `decay` is set (plain mean otherwise). `until`: only attempts of
        iterations <= until (trainer.async_level=1 selects before the last iteration is committed)."""
        since = None if window is None else current_iter - window + 1
        where, args = self._where(phase, since, current_iter if until is None else min(current_iter, until))
        rows = self.con.execute(f"SELECT question, iteration, COUNT(*), SUM({self._success}) FROM attempts "
                                f"WHERE {where} GROUP BY question, iteration", args)
        acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0, -1])  # weighted rewards, weights, n, last
        for q, it, n, total in rows:
            w = 1.0 if decay is None else decay ** (current_iter - it)
            a = acc[q]
            a[0] += w * total
            a[1] += w * n
            a[2] += n
            a[3] = max(a[3], it)
        return {q: QuestionStat(s / w if w > 0 else 0.0, int(n), int(last)) for q, (s, w, n, last) in acc.items()}

    def p_hat(self, current_iter: int, window: int | None = None, decay: float | None = None,
              phase: str | None = None) -> dict[str, float]:
        return {q: s.p for q, s in self.question_stats(current_iter, window, decay, phase).items()}

    def attempts_per_question(self, phase: str | None = None, since: int | None = None) -> dict[str, int]:
        where, args = self._where(phase, since)
        return dict(self.con.execute(f"SELECT question, COUNT(*) FROM attempts WHERE {where} GROUP BY question",
                                     args).fetchall())

    @property
    def _groups(self) -> str:
        """One row per (iteration, question) group of attempts in a phase: its size and correct count."""
        return (f"SELECT iteration, question, COUNT(*) AS n, SUM({self._success} > 0.5) AS hits FROM attempts "
                "WHERE phase = ? GROUP BY iteration, question")

    def hit_histogram(self, phase: str) -> dict[int, dict[tuple[int, int], int]]:
        """iteration -> {(hits i, attempts n): number of questions that were hit i of n}."""
        out: dict[int, dict[tuple[int, int], int]] = defaultdict(dict)
        for it, n, hits, count in self.con.execute(
                f"SELECT iteration, n, hits, COUNT(*) FROM ({self._groups}) "
                "GROUP BY iteration, n, hits ORDER BY iteration", (phase,)):
            out[it][(hits, n)] = count
        return dict(out)

    def solve_fractions(self, phase: str) -> list[SolveFractions]:
        """Per iteration: the share of questions solved by all / by none of their attempts."""
        rows = self.con.execute(
            f"SELECT iteration, AVG(hits = n), AVG(hits = 0), COUNT(*) FROM ({self._groups}) "
            "GROUP BY iteration ORDER BY iteration", (phase,))
        return [SolveFractions(it, a, z, c) for it, a, z, c in rows]

    def learnability_by_iteration(self, phase: str = "selection") -> list[SelectionLearnability]:
        """Per iteration with a recorded selection: mean p(1-p) (p from that iteration's attempts in
        `phase`) over the pool and over the selected questions; questions without attempts are left out."""
        rows = self.con.execute(
            f"WITH p AS (SELECT iteration, question, AVG({self._success}) AS p FROM attempts WHERE phase = ? "
            "           GROUP BY iteration, question) "
            "SELECT s.iteration, AVG(p.p * (1 - p.p)), AVG(CASE WHEN s.selected THEN p.p * (1 - p.p) END) "
            "FROM selections s JOIN p ON p.iteration = s.iteration AND p.question = s.question "
            "GROUP BY s.iteration ORDER BY s.iteration", (phase,))
        return [SelectionLearnability(it, pool, sel if sel is not None else float("nan")) for it, pool, sel in rows]

