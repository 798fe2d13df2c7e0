"""The worker pool itself (rlreason/reward/pool.py), with small handlers of its own: what a caller gets
when a worker's answer cannot be read, when a worker never finishes starting, and where workers live
and die (with the trainer's process, not with the thread that started them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

from rlreason.reward.pool import Pool

ROOT = Path(__file__).resolve().parents[2]


def pid_handler(_arg=None):
    """Answers each job with the pid of the worker that answered it (a job "sleep" sleeps first)."""
    def answer(job):
        if job == "sleep":
            time.sleep(600)
        return os.getpid()
    return answer


def foreign_handler(_arg=None):
    """Answers "foreign" with an instance of a class that only the worker can import, as a reward file's
    own `class Score(float)` is (its module is registered under a private name in the worker alone), and
    "generator" with what cannot be pickled at all."""
    module = types.ModuleType("rlreason_only_in_the_worker")
    module.Score = type("Score", (float,), {"__module__": module.__name__})
    sys.modules[module.__name__] = module
    return lambda job: {"foreign": module.Score(1.0), "generator": (x for x in ())}.get(job, (job, os.getpid()))


def hang_handler(_arg=None):
    time.sleep(600)  # a user's module that never finishes importing


def in_thread(fn, timeout_s: float):
    """fn() on a thread that ends afterwards; its result, or a failure (not a hung test) past timeout_s."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("result", fn()), daemon=True)
    t.start()
    t.join(timeout_s)
    assert not t.is_alive(), f"no answer within {timeout_s} s"
    return out["result"]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_an_answer_that_cannot_be_unpickled_is_an_error_for_its_job_only():
    pool = Pool(1, 10.0, foreign_handler)
    try:
        got = in_thread(lambda: pool.run(["a", "foreign", "b"]), 60)
        assert got[0][0] == got[2][0] == "ok" and got[0][1][0] == "a" and got[2][1][0] == "b"
        status, why = got[1]
        assert status == "error" and "could not be read back" in why
        assert "ModuleNotFoundError: No module named 'rlreason_only_in_the_worker'" in why
        # the message came whole: the same worker goes on answering, nothing was respawned
        assert got[0][1][1] == got[2][1][1] == pool._workers[0].proc.pid
        again = pool.run(["generator", "c"])
        assert again[0][0] == "error" and "could not be sent back" in again[0][1]
        assert again[1] == ("ok", ("c", got[0][1][1]))
    finally:
        pool.close()


def test_a_worker_that_never_finishes_starting_misses_its_deadline():
    pool = Pool(2, 5.0, hang_handler, startup_timeout_s=1.0, late_start="importing my_reward.py took too long")
    try:
        start = time.perf_counter()
        got = in_thread(lambda: pool.run([1, 2, 3]), 60)
        elapsed = time.perf_counter() - start
        assert got == [("error", "importing my_reward.py took too long")] * 3
        # two rounds of two workers (3 failed starts end it), each killed at its deadline, on a loaded CPU
        assert elapsed < 3 * 1.0 + 10, elapsed
        again = in_thread(lambda: pool.run([4]), 60)  # a later call retries, and fails the same way
        assert again == [("error", "importing my_reward.py took too long")]
    finally:
        pool.close()


def test_workers_outlive_the_thread_that_started_them():
    """trainer.async_level=1 grades on a producer thread that ends every iteration: the workers it
    started must serve the next one's thread, not die with it (and be respawned, warm-up included)."""
    pool = Pool(2, 10.0, pid_handler)
    try:
        first = in_thread(lambda: pool.run([1, 2, 3, 4]), 60)
        started = sorted(w.proc.pid for w in pool._workers)
        time.sleep(0.5)  # the thread that started them has ended: a death signal tied to it has come
        assert len(started) == 2 and all(alive(pid) for pid in started)
        second = in_thread(lambda: pool.run([1, 2, 3, 4]), 60)
        assert {pid for _, pid in first + second} <= set(started)
        assert sorted(w.proc.pid for w in pool._workers) == started
    finally:
        pool.close()


CHILD = textwrap.dedent('''
    import threading, time
    from rlreason.reward.pool import Pool
    from tests.reward.test_pool import pid_handler

    pool = Pool(2, 600.0, pid_handler)
    t = threading.Thread(target=pool.run, args=([1, 2],))  # started on a thread that ends
    t.start(); t.join()
    print(" ".join(str(w.proc.pid) for w in pool._workers), flush=True)
    pool.run(["sleep", "sleep"])  # both busy, in a job, when this process is killed
''')


def test_workers_die_with_the_trainer_when_it_is_killed():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        time.sleep(1.0)  # the jobs are in the workers
        assert all(alive(pid) for pid in pids)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "grading workers outlived the killed trainer"
