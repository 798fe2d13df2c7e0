"""Worker processes with a hard deadline per job: the one place anything untrusted or unbounded is graded.

Used for math-verify (rlreason/reward/grader.py) and for users' reward functions (function.py). A job
that misses its deadline has its worker killed and replaced, so the caller never waits past the deadline:
math-verify's own timeouts are `signal.alarm`, which cannot interrupt sympy inside C code, and a user's
function can hang anywhere (an asyncio timeout around it would leave the work running; verl froze
without one). A worker that dies gives `error` for its job.

A worker is started with `make_handler(arg)`, a top-level function (spawned processes import it by
name) returning the callable that answers each job; the start-up (its imports, a warm-up) has its own
deadline, `startup_timeout_s`: a worker that misses it is killed and counts as a failed start. Each job
comes back as (status, payload): ("ok", what the handler returned), ("error", a traceback or the reason),
or ("timeout", None). A handler should return plain values (floats, strings, dicts, lists): the caller
must be able to unpickle them, and an answer it cannot read is an `error` for that job.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from typing import Any

_MAX_STARTUP_FAILURES = 3  # workers dying before they are ready: a broken environment, not bad input

Result = tuple[str, Any]  # ("ok", value) | ("error", str) | ("timeout", None)

# Every worker is started from this one thread, which lives as long as the process. Workers die with the
# trainer by PR_SET_PDEATHSIG (`die_with_parent`), which Linux fires when the *thread* that started the child
# ends, not the process: started from the async producer's thread (one per iteration, trainer/produce.py)
# they were killed as it ended and respawned, math-verify's warm-up included, at every iteration. The
# kernel's signal is kept rather than a check inside the worker (the parent's pid, a pipe's EOF) because a
# worker stuck in C code (sympy's big integers, which hold the GIL) runs no Python that could notice.
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def start(proc: mp.process.BaseProcess) -> None:
    """`proc.start()` on the spawner thread; the child should call `die_with_parent` first thing."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlreason-worker-spawner")
        spawner = _spawner
    spawner.submit(proc.start).result()


def _forget_spawner() -> None:
    global _spawner, _spawner_lock  # a forked child has none of its parent's threads: it starts its own
    _spawner, _spawner_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_spawner)


def die_with_parent(parent: int) -> None:
    """In a child of `parent` (the trainer): be killed when it dies, however it dies. A worker stuck in C
    code would otherwise burn a core forever after a killed trainer."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: tied to the starting thread (`_spawner`)
        if os.getppid() != parent:  # it died before the line above: no signal will come
            os._exit(1)


def _serve(conn: Connection, make_handler: Callable[[Any], Callable[[Any], Any]], arg: Any, parent: int) -> None:
    """Worker process: answer jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    die_with_parent(parent)
    try:
        # Warm-up happens here, before "ready": a one-time import cost (math-verify's LaTeX parser, a
        # user's module) must not count against the first real job's deadline.
        handle = make_handler(arg)
    except BaseException:
        conn.send(("init_error", traceback.format_exc()))
        return
    conn.send("ready")
    while (job := conn.recv()) is not None:
        try:
            out: Result = ("ok", handle(job))
        except Exception:
            out = ("error", traceback.format_exc())
        try:
            conn.send(out)
        except Exception as e:  # the result cannot be pickled (a generator, a lambda ...)
            conn.send(("error", f"the result could not be sent back from the worker: {type(e).__name__}: {e}"))


class _Worker:
    def __init__(self, ctx, make_handler, arg, name: str, startup_timeout_s: float) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, make_handler, arg, os.getpid()), daemon=True, name=name)
        start(self.proc)
        child.close()
        self.ready = False
        self.job: int | None = None
        self.deadline = time.monotonic() + startup_timeout_s  # to be ready by; then each job's own

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


class Pool:
    """`size` worker processes, started only when a job needs one; `timeout_s` per unit of job cost,
    `startup_timeout_s` for a worker to be ready (`late_start`: the error its jobs get when none can be)."""

    def __init__(self, size: int, timeout_s: float, make_handler: Callable[[Any], Callable[[Any], Any]],
                 arg: Any = None, name: str = "rlreason-grader", startup_timeout_s: float = 60.0,
                 late_start: str | None = None) -> None:
        # spawn, not fork: the trainer holds threads (torch, the engine) that a fork would copy mid-state.
        self._ctx = mp.get_context("spawn")
        self.size, self.timeout_s, self.name = size, timeout_s, name
        self.startup_timeout_s = startup_timeout_s
        self.late_start = late_start or f"a {name} worker did not start within {startup_timeout_s:g} s"
        self._make, self._arg = make_handler, arg
        self._workers: list[_Worker] = []
        self._startup_failures = 0
        self.startup_error: str | None = None  # why the last worker could not start: its traceback, or late_start

    def run(self, jobs: list[Any], costs: list[int] | None = None) -> list[Result]:
        """(status, payload) for each job, in order. Job i's deadline is timeout_s x costs[i] (default 1)
        from the moment its worker receives it."""
        results: list[Result] = [("error", "not graded")] * len(jobs)
        todo = deque(range(len(jobs)))
        while todo or any(w.job is not None for w in self._workers):
            for w in list(self._workers):
                if w.ready and w.job is None and todo:
                    try:
                        w.conn.send(jobs[todo[0]])
                    except OSError:  # it died while idle: the job waits for a fresh worker
                        w.kill()
                        self._workers.remove(w)
                        continue
                    w.job = todo.popleft()
                    w.deadline = time.monotonic() + self.timeout_s * (costs[w.job] if costs else 1)
            # Top up after dispatch (which may have dropped a dead one), never past what the jobs need.
            while len(self._workers) < self.size and sum(w.job is None for w in self._workers) < len(todo):
                self._workers.append(_Worker(self._ctx, self._make, self._arg, self.name, self.startup_timeout_s))
            waiting = [w.deadline for w in self._workers if w.job is not None or not w.ready]
            timeout = max(0.0, min(waiting) - time.monotonic()) if waiting else None
            ready = set(wait([w.conn for w in self._workers] + [w.proc.sentinel for w in self._workers], timeout))
            for w in list(self._workers):
                if w.conn in ready and self._receive(w, results):
                    continue
                dead = w.proc.sentinel in ready or w.conn in ready  # readable with nothing to read: EOF
                late = (w.job is not None or not w.ready) and time.monotonic() >= w.deadline
                if not dead and not late:
                    continue
                if w.job is not None:
                    if dead:  # EOF on the pipe may come before the process can be reaped for its code
                        w.proc.join(timeout=5)
                    code = w.proc.exitcode
                    results[w.job] = (("error", f"the grading worker died (exit code {code}) on this item")
                                      if dead else ("timeout", None))
                elif not w.ready:  # a crash or a hang at start-up (an import that never returns)
                    self._startup_failures += 1
                    if not dead:
                        self.startup_error = self.late_start
                w.kill()
                self._workers.remove(w)
            if self._startup_failures >= _MAX_STARTUP_FAILURES:
                why = self.startup_error or "grading workers died before they were ready"
                for i in todo:  # retrying a broken import forever helps no one
                    results[i] = ("error", why)
                todo.clear()
        return results

    def _receive(self, w: _Worker, results: list[Result]) -> bool:
        """Read one message from `w`; False when the pipe is closed (the worker died)."""
        try:
            data = w.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        try:
            msg = pickle.loads(data)
        except Exception as e:  # noqa: BLE001 (whatever rebuilding the value raised)
            # The message came whole, so the pipe is still in step and the worker can go on; only the value
            # cannot be rebuilt here: an instance of a class that only the worker can import, say.
            if w.job is None:
                return False  # no job to answer for: treated as a broken worker
            msg = ("error", f"the worker's answer could not be read back: {type(e).__name__}: {e}")
        if msg == "ready":
            w.ready, self._startup_failures = True, 0
        elif isinstance(msg, tuple) and msg[0] == "init_error":
            self.startup_error = msg[1]
            return False  # it exits next: counted as a startup failure
        elif w.job is not None:
            results[w.job], w.job = msg, None
        return True

    def close(self) -> None:
        for w in self._workers:
            w.kill()
        self._workers.clear()
