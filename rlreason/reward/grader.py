"""Outcome reward: is the final answer in a response equal to the gold answer?

Plain numbers (arith, nearly all of GSM8K) are compared in-process, thousands per second. Anything else
goes to math-verify in a pool of worker processes. math-verify's own timeouts are `signal.alarm`, which
fires only in a main thread and cannot interrupt sympy inside C code, so the deadline is held from
outside instead: a worker that misses it is killed and replaced. A worker that dies gives `error`.
Nothing here evaluates model text; only math-verify's LaTeX parser reads it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import re
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing.connection import Connection, wait

from rlreason.reward.extract import ORDER, extract_answer

REASONS = ("correct", "wrong", "no_answer", "truncated", "timeout", "error")
# ASCII digits only: `\d` would also take look-alikes (fullwidth "８", Arabic-Indic "٨"), which Decimal
# reads as 8 but math-verify does not; the same response must get the same grade on either path.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)", re.ASCII)
# Tasks whose numeric gold answer is never matched by a non-numeric response (no math-verify).
STRICT = ("arith", "hash")
_MAX_STARTUP_FAILURES = 3  # workers dying before they are ready: a broken environment, not bad input


@dataclass(frozen=True)
class Verdict:
    reward: float
    reason: str  # one of REASONS
    extracted: str | None = None  # the answer read from the response (None when none was, or truncated)


def as_number(s: str) -> Decimal | None:
    """`s` as a number when it is a plain integer/decimal once commas, dollars and spaces are gone."""
    s = s.replace(",", "").replace("\\$", "").replace("$", "").replace(" ", "")
    if len(s) > 64 or not _NUMBER.fullmatch(s):  # longer is no plain answer: let math-verify judge it
        return None
    return Decimal(s)


class Grader:
    """Grades responses against gold answers for one task: math | gsm8k | arith, or the strict checkers
    hash (`#### N` only, no math-verify) and exact (the stripped response equals the gold answer)."""

    def __init__(self, task: str, timeout_s: float = 5.0, workers: int = 2):
        if task not in ORDER:
            raise ValueError(f"unknown task {task!r}: expected one of {', '.join(ORDER)}")
        if timeout_s <= 0 or workers < 1:
            raise ValueError(f"need timeout_s > 0 and workers >= 1, got {timeout_s}, {workers}")
        self.task = task
        self._pool = _Pool(workers, timeout_s)  # starts no process until something needs math-verify

    def grade(self, responses: list[str], golds: list[str], truncated: list[bool] | None = None) -> list[Verdict]:
        truncated = truncated if truncated is not None else [False] * len(responses)
        if not len(responses) == len(golds) == len(truncated):
            raise ValueError(f"grade: {len(responses)} responses, {len(golds)} golds, {len(truncated)} flags")
        verdicts: list[Verdict | None] = [None] * len(responses)
        slow: dict[tuple[str, str], list[int]] = {}  # identical pairs are common (VinePPO's MC samples)
        for i, (text, gold, cut) in enumerate(zip(responses, golds, truncated)):
            pred = None if cut else extract_answer(text, self.task)
            if cut or pred is None:
                verdicts[i] = Verdict(0.0, "truncated" if cut else "no_answer")
                continue
            if self.task == "exact":  # string equality, nothing else
                verdicts[i] = _verdict(pred == gold.strip(), pred)
                continue
            a, b = as_number(pred), as_number(gold)
            if b is not None and (a is not None or self.task in STRICT):
                verdicts[i] = _verdict(a == b, pred)
            elif self.task == "hash":  # no math-verify: equal as numbers (above) or as stripped strings
                verdicts[i] = _verdict(pred == gold.strip(), pred)
            else:
                slow.setdefault((pred, gold), []).append(i)
        for key, reason in zip(slow, self._pool.run(list(slow))):
            for i in slow[key]:
                verdicts[i] = Verdict(float(reason == "correct"), reason, key[0])
        return verdicts  # type: ignore[return-value]

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _verdict(ok: bool, pred: str) -> Verdict:
    return Verdict(1.0, "correct", pred) if ok else Verdict(0.0, "wrong", pred)


# --- the math-verify pool ---


def _serve(conn: Connection) -> None:
    """Worker process: answer (pred, gold) pairs until told to stop."""
    import logging

    from math_verify import parse, verify

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if sys.platform == "linux":
        # Die with the parent: a worker stuck in sympy's C code would otherwise burn a core forever
        # after a killed trainer. (Linux ties this to the spawning thread; should that thread exit,
        # the worker dies and is replaced like any crashed one.)
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    # Its "timeout disabled" warning: we disable them on purpose, the parent holds the deadline.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # Warm up before declaring ready: the first parse/verify imports the LaTeX parser and much of sympy
    # lazily (seconds on a fresh install, where nothing is byte-compiled yet). That one-time cost must not
    # count against the first real item's deadline, or it would be graded "timeout" (reward 0).
    verify(parse("\\boxed{\\frac{1}{2}}", parsing_timeout=None), parse("\\boxed{0.5}", parsing_timeout=None),
           timeout_seconds=None)
    conn.send("ready")
    while (job := conn.recv()) is not None:
        pred, gold = job
        try:  # LaTeX math-verify cannot parse is simply no match ("wrong"); other failures are "error"
            g = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
            p = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
            conn.send("correct" if verify(g, p, timeout_seconds=None) else "wrong")
        except Exception:
            conn.send("error")


class _Worker:
    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="rlreason-grader")
        self.proc.start()
        child.close()
        self.ready = False
        self.job: int | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


class _Pool:
    def __init__(self, size: int, timeout_s: float) -> None:
        # spawn, not fork: the trainer holds threads (torch, the engine) that a fork would copy mid-state.
        self._ctx = mp.get_context("spawn")
        self.size, self.timeout_s = size, timeout_s
        self._workers: list[_Worker] = []
        self._startup_failures = 0

    def run(self, jobs: list[tuple[str, str]]) -> list[str]:
        """A reason (correct | wrong | timeout | error) for each (pred, gold) job, in order."""
        results: list[str] = ["error"] * len(jobs)
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
                    w.job, w.deadline = todo.popleft(), time.monotonic() + self.timeout_s
            # Top up after dispatch (which may have dropped a dead one), never past what the jobs need.
            while len(self._workers) < self.size and sum(w.job is None for w in self._workers) < len(todo):
                self._workers.append(_Worker(self._ctx))
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
                    results[w.job] = "error" if dead else "timeout"
                elif not w.ready:
                    self._startup_failures += 1
                w.kill()
                self._workers.remove(w)
            if self._startup_failures >= _MAX_STARTUP_FAILURES:
                todo.clear()  # results stay "error"; retrying a broken import forever helps no one
        return results

    def _receive(self, w: _Worker, results: list[str]) -> bool:
        """Read one message from `w`; False when the pipe is closed (the worker died)."""
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            return False
        if msg == "ready":
            w.ready, self._startup_failures = True, 0
        elif w.job is not None:
            results[w.job], w.job = msg, None
        return True

    def close(self) -> None:
        for w in self._workers:
            w.kill()
        self._workers.clear()
