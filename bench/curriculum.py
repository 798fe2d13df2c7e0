"""Curriculum benchmark: what choosing the questions costs, uniform vs LILO and its variants, in one process.

    python -m bench.run curriculum

Issue #18 §3, "scoring the pool is LILO's price": uniform, learnability (LILO: a pool of pool_factor x
batch questions rolled out n_select times each, every iteration), sfl (LILO's buffered variant: every
refresh_every = T iterations, n_candidates x n_select rollouts refill a buffer) and learnability_history
(ranks by the stats store's history, no extra rollouts), each with its conf/curriculum default, on the
embedded default (tiny model, arith, vLLM, the default algo at 16 questions x 8 samples), the same seed.
One vLLM engine serves every Run and the Runs interleave iteration by iteration (bench/iteration.py's
helpers), so machine load hits them alike.

Per curriculum: selection rollouts per training rollout (the samplers' curriculum/rollouts_selection over
curriculum/rollouts_train), all generated rollouts per training rollout (selection + training rollouts not
reused from selection), and seconds per iteration, in the selection phase and in total. Iteration 1 is a
warm-up for the timing of every curriculum but sfl, whose first iteration is its buffer refresh: it is
timed as the refresh (its selection phase), and iterations 2.. as sfl's ordinary iterations. sfl's keys
ending in `_amortised_T{T}` spread one refresh over its T iterations: (refresh + (T - 1) x ordinary) / T,
where a refresh iteration is an ordinary one plus the refresh's selection seconds and rollouts.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench.iteration import compose_cfg, interleaved

# uniform first: the engine's own first-use costs land on uniform's warm-up iteration
CURRICULA = ("uniform", "learnability", "sfl", "learnability_history")
WARMUP, TIMED = 1, 2


def _per_iteration(name: str, secs: list[float], spent: list[dict[str, float]],
                   metrics: list[dict[str, float]]) -> dict[str, Any]:
    mean = statistics.fmean
    selection_s = mean(s.get("selection", 0.0) for s in spent)
    rollouts = {k: mean(m[f"curriculum/rollouts_{k}"] for m in metrics) for k in ("selection", "train", "reused")}
    return {
        f"{name}/iteration_s": mean(secs),
        f"{name}/iteration_s_each": " ".join(f"{s:.2f}" for s in secs),
        f"{name}/selection_s": selection_s,
        f"{name}/selection_fraction_of_iteration": selection_s / mean(secs),
        f"{name}/rollout_s": mean(s.get("rollout", 0.0) for s in spent),
        f"{name}/selection_rollouts": rollouts["selection"],
        f"{name}/train_rollouts": rollouts["train"],
        f"{name}/reused_rollouts": rollouts["reused"],
        f"{name}/selection_rollouts_per_train_rollout": rollouts["selection"] / rollouts["train"],
        f"{name}/generated_rollouts_per_train_rollout":
            (rollouts["selection"] + rollouts["train"] - rollouts["reused"]) / rollouts["train"],
        f"{name}/train_reward": mean(m["train/reward"] for m in metrics),
    }


def _sfl_amortised(cfg, refresh: tuple[float, dict[str, float], dict[str, float]],
                   ordinary: dict[str, Any]) -> dict[str, Any]:
    """One refresh spread over its refresh_every iterations, from the refresh iteration's selection phase
    and the ordinary iterations' figures."""
    c = cfg.curriculum
    t = int(c.refresh_every)
    secs, spent, metrics = refresh
    refresh_sel_s = spent.get("selection", 0.0)
    refresh_rollouts = metrics["curriculum/rollouts_selection"]
    sel_s = ordinary["sfl/selection_s"]
    extra_s = (refresh_sel_s - sel_s) / t  # a refresh iteration = an ordinary one + the refresh's selection
    train = ordinary["sfl/train_rollouts"]
    per_iter_rollouts = (refresh_rollouts + (t - 1) * ordinary["sfl/selection_rollouts"]) / t
    generated = per_iter_rollouts + train - ordinary["sfl/reused_rollouts"]
    return {
        "sfl/refresh_every": t,
        "sfl/refresh_candidates_x_attempts": f"{int(c.n_candidates)} x {int(c.n_select)}",
        "sfl/refresh_rollouts": refresh_rollouts,
        "sfl/refresh_selection_s": refresh_sel_s,
        "sfl/refresh_iteration_s": secs,  # as run: iteration 1, so it carries the Run's own first-iteration costs
        f"sfl/selection_s_amortised_T{t}": sel_s + extra_s,
        f"sfl/iteration_s_amortised_T{t}": ordinary["sfl/iteration_s"] + extra_s,
        f"sfl/selection_rollouts_per_train_rollout_amortised_T{t}": per_iter_rollouts / train,
        f"sfl/generated_rollouts_per_train_rollout_amortised_T{t}": generated / train,
    }


def run(extra: tuple[str, ...] = (), warmup: int = WARMUP, timed: int = TIMED) -> dict[str, Any]:
    """`extra`: Hydra overrides for every Run (tiny sizes while developing); the benchmark uses none."""
    cfgs = {name: compose_cfg(f"curriculum={name}", *extra) for name in CURRICULA}
    base = cfgs["uniform"]
    results, engine_start = interleaved(cfgs, warmup + timed, "bench-curriculum-")
    # sfl's first iteration always refreshes its (empty) buffer: measured once, amortised below, and
    # never among the timed ordinary iterations
    refresh = results["sfl"][0][:3]
    timed_res = {n: rs[max(warmup, 1) if n == "sfl" else warmup:] for n, rs in results.items()}
    secs = {n: [r[0] for r in rs] for n, rs in timed_res.items()}
    spent = {n: [r[1] for r in rs] for n, rs in timed_res.items()}
    metrics = {n: [r[2] for r in rs] for n, rs in timed_res.items()}

    out: dict[str, Any] = {}
    for name in cfgs:
        out |= _per_iteration(name, secs[name], spent[name], metrics[name])
    out |= _sfl_amortised(cfgs["sfl"], refresh, out)
    c = base
    out |= {
        "config/algo": c.algo.name,
        "config/model": f"{c.model.name} ({c.model.path})",
        "config/data": c.data.name,
        "config/questions_per_iteration": int(c.trainer.questions_per_iteration),
        "config/samples_per_question": int(c.rollout.samples_per_question),
        "config/max_new_tokens": int(c.rollout.max_new_tokens),
        "config/learnability": f"pool_factor {cfgs['learnability'].curriculum.pool_factor}, "
                               f"n_select {cfgs['learnability'].curriculum.n_select}",
        "config/warmup_iterations": warmup,
        "config/timed_iterations": timed,
        "config/overrides": " ".join(extra),
        "engine_start_s": engine_start,
        "load_avg_1m_end": os.getloadavg()[0],  # the machine record has it at the start
    }
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
