"""Async benchmark: seconds per iteration at trainer.async_level=0 and 1, side by side, VinePPO, PPO, GRPO.

    python -m bench.run async        (or via `make bench`)

For each algorithm two Runs of the default config (bench/iteration.py's: tiny model, arith, vLLM, 16
questions x 8 samples), one per level, share one engine and take iterations in turn (sync, async, sync,
...), so drifting machine load hits both alike; the seed is the same, so both get the same questions.
Before each Run's iteration its own weights go into the shared engine (untimed; the async Run's next
batch was complete before its previous sync, so the engine holds what its own would). The first
iteration is a warm-up (at level 1 it also produces its batch in line); then TIMED iterations, each
`train_iteration` + the store commit; no eval, no checkpoints.

The prediction comes from the synchronous Run's own phases: producer P = selection + rollout + mc (or
advantages) + grading, learner L, sync S; one step off at best overlaps P and L:
    predicted speed-up = (P + L + S) / (max(P, L) + S),  predicted async/sync = its inverse.
Cores: the process runs torch at `--threads` intra-op threads (1 by default); at level 1 the producer's
thread (the in-process vLLM engine's forward passes, grading in the reward pool's processes) and the
learner's thread each run their own. The 1-minute load average is recorded at the start and the end:
other work on a shared machine skews every figure.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench.iteration import COMMON, compose_cfg, interleaved

ALGOS = ("vineppo", "ppo", "grpo")
WARMUP, TIMED = 1, 3
PRODUCER = ("selection", "rollout", "mc", "advantages", "grading")


def run(extra: tuple[str, ...] = (), warmup: int = WARMUP, timed: int = TIMED) -> dict[str, Any]:
    """`extra`: Hydra overrides for every Run (tiny sizes while developing); the benchmark uses none."""
    load_start = os.getloadavg()[0]
    cfgs = {f"{a}/{mode}": compose_cfg(f"algo={a}", f"trainer.async_level={level}", *extra)  # + bench COMMON
            for a in ALGOS for mode, level in (("sync", 0), ("async", 1))}
    # round-robin over the six Runs on one shared engine, each with its own schedule
    results, engine_start = interleaved(cfgs, warmup + timed, "bench-async-")

    mean = statistics.fmean
    out: dict[str, Any] = {}
    for algo in ALGOS:
        sync, asyn = results[f"{algo}/sync"][warmup:], results[f"{algo}/async"][warmup:]
        s_iter, a_iter = mean(r[0] for r in sync), mean(r[0] for r in asyn)
        phase = {k: mean(r[1].get(k, 0.0) for r in sync) for k in {k for r in sync for k in r[1]}}
        p = sum(phase.get(k, 0.0) for k in PRODUCER)
        learner, sync_s = phase.get("learner", 0.0), phase.get("sync", 0.0)
        speedup = (p + learner + sync_s) / (max(p, learner) + sync_s)
        out |= {
            f"{algo}/sync_iteration_s": s_iter,
            f"{algo}/async_iteration_s": a_iter,
            f"{algo}/async_over_sync": a_iter / s_iter,
            f"{algo}/sync_iteration_s_each": " ".join(f"{r[0]:.2f}" for r in sync),
            f"{algo}/async_iteration_s_each": " ".join(f"{r[0]:.2f}" for r in asyn),
            f"{algo}/sync_producer_s": p,
            f"{algo}/sync_learner_s": learner,
            f"{algo}/sync_sync_s": sync_s,
            f"{algo}/predicted_speedup": speedup,
            f"{algo}/predicted_async_over_sync": 1 / speedup,
            f"{algo}/async_staleness": mean(r[2].get("async/staleness", 0.0) for r in asyn),
            f"{algo}/async_logprob_gap": mean(r[2].get("async/logprob_gap", 0.0) for r in asyn),
            f"{algo}/async_tis_capped_frac": mean(r[2].get("learner/tis_capped_frac", 0.0) for r in asyn),
        }
    c = next(iter(cfgs.values()))
    out |= {
        "cores": (f"{os.cpu_count()} cores, one process: torch intra-op threads {_threads()} per thread; at "
                  "level 1 the producer's thread (in-process vLLM) and the learner's thread share them, "
                  f"grading in {c.reward.workers} reward-pool processes"),
        "config/engine": c.engine.name,
        "config/questions_per_iteration": int(c.trainer.questions_per_iteration),
        "config/samples_per_question": int(c.rollout.samples_per_question),
        "config/mc_rollouts": int(cfgs["vineppo/sync"].algo.mc_rollouts),
        "config/warmup_iterations": warmup,
        "config/timed_iterations": timed,
        "config/overrides": " ".join([*COMMON, *extra]),
        "engine_start_s": engine_start,
        "load_avg_1m_start": load_start,
        "load_avg_1m_end": os.getloadavg()[0],
    }
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()
