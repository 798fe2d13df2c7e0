"""Worker processes with a hard deadline per job: the one place anything untrusted or unbounded is graded.

Used for math-verify (rlreason/reward/grader.py) and for users' reward functions (function.py). A job
that misses its deadline has its worker killed and replaced, so the caller never waits past the deadline:
math-verify's own timeouts are `signal.alarm`, which cannot interrupt sympy inside C code, and a user's
function can hang anywhere (an asyncio timeout around it would leave the work running; verl froze
without one). A worker that dies gives `error` for its job.

A worker is started with `make_handler(arg)`, a top-level function (spawned processes import it by
name) returning the callable that answers each job. Each job comes back as (status, payload):
("ok", what the handler returned), ("error", a traceback or the reason), or ("timeout", None).
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

_MAX_STARTUP_FAILURES = 3  # workers dying before they are ready: a broken environment, not bad input

Result = tuple[str, Any]  # ("ok", value) | ("error", str) | ("timeout", None)


def _serve(conn: Connection, make_handler: Callable[[Any], Callable[[Any], Any]], arg: Any) -> None:
    """Worker process: answer jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if sys.platform == "linux":
        # Die with the parent: a worker stuck in C code would otherwise burn a core forever after a
        # killed trainer. (Linux ties this to the spawning thread; should that thread exit, the worker
        # dies and is replaced like any crashed one.)
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
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
    def __init__(self, ctx, make_handler, arg, name: str) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, make_handler, arg), daemon=True, name=name)
        self.proc.start()
        child.close()
        self.ready = False
        self.job: int | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


class Pool:
    """`size` worker processes, started only when a job needs one; `timeout_s` per unit of job cost."""

    def __init__(self, size: int, timeout_s: float, make_handler: Callable[[Any], Callable[[Any], Any]],
                 arg: Any = None, name: str = "rlreason-grader") -> None:
        # spawn, not fork: the trainer holds threads (torch, the engine) that a fork would copy mid-state.
        self._ctx = mp.get_context("spawn")
        self.size, self.timeout_s, self.name = size, timeout_s, name
        self._make, self._arg = make_handler, arg
        self._workers: list[_Worker] = []
        self._startup_failures = 0
        self.startup_error: str | None = None  # the last worker's own traceback when it could not start

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
                self._workers.append(_Worker(self._ctx, self._make, self._arg, self.name))
            busy = [w.deadline for w in self._workers if w.job is not None]
            timeout = max(0.0, min(busy) - time.monotonic()) if busy else None
            ready = set(wait([w.conn for w in self._workers] + [w.proc.sentinel for w in self._workers], timeout))
            for w in list(self._workers):
                if w.conn in ready and self._receive(w, results):
                    continue
                dead = w.proc.sentinel in ready or w.conn in ready  # readable with nothing to read: EOF
                if not dead and not (w.job is not None and time.monotonic() >= w.deadline):
                    continue
                if w.job is not None:
                    if dead:  # EOF on the pipe may come before the process can be reaped for its code
                        w.proc.join(timeout=5)
                    code = w.proc.exitcode
                    results[w.job] = (("error", f"the grading worker died (exit code {code}) on this item")
                                      if dead else ("timeout", None))
                elif not w.ready:
                    self._startup_failures += 1
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
            msg = w.conn.recv()
        except (EOFError, OSError):
            return False
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
