"""Stats store at scale: build a 100k-attempt store and time every query the curriculum and plots use.

    python bench/store.py        (or via `make bench`, which calls run())

A store of one long run: 100 iterations x (100 selection groups + 25 train groups) x 8 attempts over
2,000 questions. The target is well under a second per query.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlreason.curriculum.store import Attempt, StatsStore

ITERATIONS, POOL, BATCH, N, QUESTIONS = 100, 100, 25, 8, 2000


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def build(path: Path, seed: int = 0) -> int:
    rng = random.Random(seed)
    p = [rng.random() for _ in range(QUESTIONS)]
    rows = 0
    with StatsStore(path, "bench") as store:
        for it in range(ITERATIONS):
            pool = rng.sample(range(QUESTIONS), POOL)
            for phase, qs in (("selection", pool), ("train", pool[:BATCH])):
                store.add([Attempt(f"q{q}", it, phase, float(rng.random() < p[q]), rng.randint(10, 500))
                           for q in qs for _ in range(N)])
                rows += len(qs) * N
            store.record_selection(it, [f"q{q}" for q in pool], [f"q{q}" for q in pool[:BATCH]])
            store.commit(it)
    return rows


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stats.sqlite"
        build_s, rows = _timed(lambda: build(path))
        now = ITERATIONS - 1
        out: dict[str, float] = {"store/attempts": rows, "store/build_s": build_s,
                                 "store/commit_mean_s": build_s / ITERATIONS}
        with StatsStore(path, "bench") as store:
            queries = {
                "p_hat_window": lambda: store.p_hat(now, window=20, phase="train"),
                "p_hat_decay_window": lambda: store.p_hat(now, window=20, decay=0.5, phase="train"),
                "p_hat_decay_all": lambda: store.p_hat(now, decay=0.9),
                "attempts_per_question": lambda: store.attempts_per_question(),
                "hit_histogram": lambda: store.hit_histogram("selection"),
                "solve_fractions": lambda: store.solve_fractions("train"),
                "learnability_by_iteration": lambda: store.learnability_by_iteration("selection"),
                "truncate_after_last": lambda: store.truncate_after(now),
            }
            for name, fn in queries.items():
                out[f"store/{name}_s"] = min(_timed(fn)[0] for _ in range(3))
        out["store/file_mb"] = path.stat().st_size / 1e6  # WAL checkpointed into the file on close
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
