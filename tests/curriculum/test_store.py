import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlreason.curriculum.store import SCHEMA_VERSION, Attempt, StatsStore, StoreError

REPO = Path(__file__).resolve().parents[2]


def attempts(q: str, it: int, rewards: list[float], phase: str = "train") -> list[Attempt]:
    return [Attempt(q, it, phase, r, 4) for r in rewards]


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.fixture
def store(tmp_path):
    with StatsStore(tmp_path / "stats.sqlite", "run-a") as s:
        yield s


def test_commit_is_per_iteration_and_survives_reopen(tmp_path):
    path = tmp_path / "stats.sqlite"
    with StatsStore(path, "run-a") as s:
        assert s.last_committed_iteration() is None
        s.add(attempts("q1", 0, [1, 0]))
        assert s.attempts_per_question() == {}  # buffered, not yet written
        s.commit(0)
        assert s.last_committed_iteration() == 0
        with pytest.raises(StoreError, match="already committed"):
            s.commit(0)
        s.add(attempts("q1", 1, [1]))  # iteration in flight, never committed
    with StatsStore(path, "run-a") as s:
        assert s.last_committed_iteration() == 0
        assert s.attempts_per_question() == {"q1": 2}


def test_truncate_after_forgets_later_iterations(store):
    for it in range(5):
        store.add(attempts("q1", it, [1, 0]))
        store.record_selection(it, ["q1", "q2"], ["q1"])
        store.commit(it)
    store.add(attempts("q1", 5, [1]))
    store.truncate_after(2)
    assert store.last_committed_iteration() == 2
    assert store.attempts_per_question() == {"q1": 6}
    assert [r.iteration for r in store.learnability_by_iteration("train")] == [0, 1, 2]
    store.add(attempts("q1", 3, [1]))  # the redone iteration
    store.commit(3)
    assert store.attempts_per_question(since=3) == {"q1": 1}


def test_p_hat_window_decay_and_phase(store):
    for it, rewards in enumerate([[1, 1], [0, 0], [1, 0]]):
        store.add(attempts("a", it, rewards))
        store.add(attempts("a", it, [1, 1, 1], phase="eval"))
        store.commit(it)
    train = dict(current_iter=2, phase="train")
    assert store.p_hat(**train) == {"a": 0.5}
    assert store.p_hat(window=2, **train) == {"a": 0.25}  # iterations 1, 2
    assert store.p_hat(window=1, **train) == {"a": 0.5}
    assert store.p_hat(decay=0.5, **train)["a"] == pytest.approx((0.25 * 2 + 1) / (0.25 * 2 + 0.5 * 2 + 2))
    assert store.p_hat(window=2, decay=0.5, **train)["a"] == pytest.approx(1 / (0.5 * 2 + 2))
    assert store.p_hat(current_iter=1, phase="train") == {"a": 0.5}  # the future is not history
    assert store.p_hat(current_iter=2)["a"] == pytest.approx(12 / 15)  # every phase
    stats = store.question_stats(2, window=2, decay=0.5, phase="train")
    assert stats["a"].n == 4


def test_attempts_per_question(store):
    store.add(attempts("a", 0, [1, 0]) + attempts("b", 0, [1], "selection"))
    store.commit(0)
    store.add(attempts("a", 1, [1]))
    store.commit(1)
    assert store.attempts_per_question() == {"a": 3, "b": 1}
    assert store.attempts_per_question(phase="train") == {"a": 3}
    assert store.attempts_per_question(since=1) == {"a": 1}


def test_hit_histogram_and_solve_fractions(store):
    for q, hits in [("q1", 8), ("q2", 0), ("q3", 3), ("q4", 3)]:
        store.add(attempts(q, 0, [1] * hits + [0] * (8 - hits)))
    store.add(attempts("q1", 1, [1, 0]))
    store.add(attempts("q2", 1, [1, 1], phase="selection"))
    store.commit(1)
    assert store.hit_histogram("train") == {0: {(8, 8): 1, (0, 8): 1, (3, 8): 2}, 1: {(1, 2): 1}}
    assert store.hit_histogram("selection") == {1: {(2, 2): 1}}
    rows = store.solve_fractions("train")
    assert [(r.iteration, r.all_solved, r.none_solved, r.questions) for r in rows] == [(0, 0.25, 0.25, 4), (1, 0, 0, 1)]


def test_learnability_of_selected_vs_pool(store):
    for q, rewards in [("q1", [1, 1]), ("q2", [0, 0]), ("q3", [1, 0]), ("q4", [1, 0, 0, 0])]:
        store.add(attempts(q, 0, rewards, phase="selection"))
    store.record_selection(0, ["q1", "q2", "q3", "q4"], ["q3", "q4"])
    store.commit(0)
    (row,) = store.learnability_by_iteration("selection")
    assert row.pool == pytest.approx((0.25 + 0.1875) / 4)
    assert row.selected == pytest.approx((0.25 + 0.1875) / 2)
    assert store.learnability_by_iteration("train") == []  # no train attempts to estimate p from


def test_unknown_phase_rejected(store):
    with pytest.raises(ValueError, match="phase"):
        store.add([Attempt("q", 0, "warmup", 1.0, 1)])


def test_foreign_run_refused_and_untouched(tmp_path):
    path = tmp_path / "stats.sqlite"
    with StatsStore(path, "run-a") as s:
        s.add(attempts("q1", 0, [1]))
        s.commit(0)
    before = snapshot(path)
    time.sleep(0.01)
    with pytest.raises(StoreError, match="run-a"):
        StatsStore(path, "run-b")
    assert snapshot(path) == before
    with StatsStore(path, None, readonly=True) as s:  # any run's store can be read
        assert s.attempts_per_question() == {"q1": 1}
        with pytest.raises(StoreError, match="read-only"):
            s.commit(1)
    assert snapshot(path) == before


def test_other_schema_version_refused_and_untouched(tmp_path):
    path = tmp_path / "stats.sqlite"
    StatsStore(path, "run-a").close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    before = snapshot(path)
    with pytest.raises(StoreError, match="schema version"):
        StatsStore(path, "run-a")
    assert snapshot(path) == before


@pytest.mark.parametrize("content", [b"not a database at all" * 100, "sqlite-without-meta"])
def test_bad_file_refused_and_untouched(tmp_path, content):
    path = tmp_path / "stats.sqlite"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE other (x)")
        con.commit()
        con.close()
    before = snapshot(path)
    with pytest.raises(StoreError, match=str(path)):
        StatsStore(path, "run-a")
    assert snapshot(path) == before


def test_empty_file_is_a_fresh_store(tmp_path):
    path = tmp_path / "stats.sqlite"
    path.touch()  # a run killed between creating the file and writing the schema
    with StatsStore(path, "run-a") as s:
        assert s.last_committed_iteration() is None


CHILD = """
import sys, time
from rlreason.curriculum.store import Attempt, StatsStore
path, rows, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "pause"
store = StatsStore(path, "run-a")
start = (store.last_committed_iteration() or -1) + 1
store.truncate_after(start - 1)

def trace(sql):
    # Rows of this iteration are written, COMMIT not yet issued: tell the parent and wait for the kill.
    if pause and sql.startswith("UPDATE meta") and it == start + 2:
        print("in-flight", flush=True)
        time.sleep(60)

store.con.set_trace_callback(trace)
for it in range(start, start + 100000):
    store.add([Attempt(f"q{j}", it, "train", float(j % 2), 5) for j in range(rows)])
    store.record_selection(it, ["q0", "q1"], ["q0"])
    store.commit(it)
    print(it, flush=True)
"""


@pytest.mark.parametrize("when", ["pause", "0", "0.017"])
def test_sigkill_mid_write_loses_at_most_the_iteration_in_flight(tmp_path, when):
    """Kill a committing child inside a transaction (pause) or at arbitrary moments; every committed
    iteration must be complete and nothing of the one in flight may be visible."""
    path, rows = tmp_path / "stats.sqlite", 20000
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(2):  # the second round resumes the store the first kill left behind
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(rows), when],
                                 stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        lines = [child.stdout.readline().strip() for _ in range(3)]
        if when == "pause":
            assert lines[-1] == "in-flight"
        else:
            time.sleep(float(when))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        committed = [int(x) for x in lines if x.isdigit()]
        with StatsStore(path, "run-a") as s:
            last = s.last_committed_iteration()
            assert last is not None and committed[-1] <= last
            if when == "pause":
                assert last == committed[-1]  # the paused iteration is gone entirely
            counts = dict(s.con.execute("SELECT iteration, COUNT(*) FROM attempts GROUP BY iteration").fetchall())
            assert counts == {it: rows for it in range(last + 1)}
            selections = dict(s.con.execute("SELECT iteration, COUNT(*) FROM selections GROUP BY iteration"))
            assert selections == {it: 2 for it in range(last + 1)}
