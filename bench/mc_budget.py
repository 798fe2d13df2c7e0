"""MC budget benchmark: VinePPO's MC tokens per iteration with every state asking for the full
`rollout.max_new_tokens` (rlreason before) against each state asking for what the trajectory's budget
has left (`max_new_tokens` minus the tokens already in the state), on the same episodes, in one run.

    python -m bench.run mc_budget        (or via `make bench`)

Default config (conf/config.yaml: embedded tiny model, data=arith, engine=vllm), the start policy (no
updates, so both budgets see identical states): each of ITERATIONS iterations rolls out a batch of
train questions once, then runs the MC phase on copies of the same episodes with the same seed, full
budget first. Tokens are the continuations' generated tokens (`mc/tokens`), `requested` what the
requests allowed (K x sum of the budgets); continuations that reached the trajectory's budget are graded
truncated either way, so the values can differ only in those.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.iteration import compose_cfg, start_engine

ITERATIONS = 3
# The default budget (80) rarely binds on arith (the tiny model stops in ~30 tokens); a tight one does,
# as 1024 does for long MATH solutions.
SETTINGS = {"default": (), "tight": ("rollout.max_new_tokens=32", "rollout.max_gold_cut=null")}  # tight on purpose


def run(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, overrides in SETTINGS.items():
        out |= {f"{name}/{k}": v for k, v in run_one((*overrides, *extra)).items()}
    return out


def run_one(extra: tuple[str, ...] = (), iterations: int = ITERATIONS) -> dict[str, Any]:
    from rlreason.algo import assign_vineppo_advantages
    from rlreason.seeds import SeedStream
    from rlreason.trainer.build import build

    cfg = compose_cfg("algo=vineppo", *extra)
    shared, _ = start_engine(cfg)
    rows: dict[str, list[dict[str, float]]] = {"full": [], "per_state": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-mc-budget-") as tmp:
            r = build(cfg, Path(tmp) / "run", shared)
            try:
                q = cfg.trainer.questions_per_iteration
                for it in range(1, iterations + 1):
                    r.roller.seeds = SeedStream(cfg.seed, it)
                    groups = r.roller(r.train[(it - 1) * q: it * q], cfg.rollout.samples_per_question)
                    episodes = [ep for g in groups for ep in g]
                    truncated = sum(ep.finish_reason == "length" for ep in episodes) / len(episodes)
                    for name in ("full", "per_state"):
                        eps = copy.deepcopy(episodes)
                        mc_seeds = SeedStream(cfg.seed, it)  # both budgets draw the same MC seeds
                        t = time.perf_counter()
                        m = assign_vineppo_advantages(
                            eps, r.engine, r.grader, r.tokenizer, task=cfg.data.name, k=cfg.algo.mc_rollouts,
                            temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                            max_new_tokens=cfg.rollout.max_new_tokens, steps=cfg.data.steps,
                            stop=tuple(cfg.rollout.stop), seeds=mc_seeds,
                            version=r.learner.version, per_state_budget=name == "per_state")
                        m["seconds"], m["truncated"] = time.perf_counter() - t, truncated
                        rows[name].append(m)
                        print(f"[bench] iteration {it} {name}: {m['mc/tokens']:.0f} MC tokens, "
                              f"{m['seconds']:.2f} s", flush=True)
            finally:
                r.close(close_engine=False)
    finally:
        shared.close()

    out: dict[str, Any] = {}
    for name, ms in rows.items():
        out[f"{name}/mc_tokens_per_iteration"] = statistics.fmean(m["mc/tokens"] for m in ms)
        out[f"{name}/mc_requested_tokens_per_iteration"] = statistics.fmean(m["mc/requested_tokens"] for m in ms)
        out[f"{name}/mc_seconds_per_iteration"] = statistics.fmean(m["seconds"] for m in ms)
        out[f"{name}/unique_states_per_iteration"] = statistics.fmean(m["mc/unique_states"] for m in ms)
        out[f"{name}/trajectories_truncated"] = statistics.fmean(m["truncated"] for m in ms)
    out["per_state_over_full_tokens"] = out["per_state/mc_tokens_per_iteration"] / out["full/mc_tokens_per_iteration"]
    out["per_state_over_full_seconds"] = (out["per_state/mc_seconds_per_iteration"]
                                          / out["full/mc_seconds_per_iteration"])
    out |= {
        "config/model": f"{cfg.model.name} ({cfg.model.path})",
        "config/data": cfg.data.name,
        "config/questions_per_iteration": int(cfg.trainer.questions_per_iteration),
        "config/samples_per_question": int(cfg.rollout.samples_per_question),
        "config/max_new_tokens": int(cfg.rollout.max_new_tokens),
        "config/mc_rollouts": int(cfg.algo.mc_rollouts),
        "config/iterations": iterations,
        "config/overrides": " ".join(extra),
    }
    return out
