"""Multi-turn cost: a multi-turn VinePPO iteration's phases beside a single-turn one of similar token count.

    python -m bench.run multiturn        (or via `make bench`, which calls run())

Multi-turn: `experiment=guess` (model=tiny_guess, the hidden-number game GuessNumber, docs/guess.md).
Single-turn: the default arith task with model=tiny, the same ~0.9M-parameter character-level Llama
(same sizes, its own vocabulary and weights). Both at the tiny models' CPU recipe (K = 4 continuations per
state, temperature 1) and the same batch, VinePPO, lines as steps. Why arith: its responses carry about as
many generated tokens and as many value states per episode as a game's actions (the figures under
`tokens/` and `states/` say how close); a game's episode also holds the environment's replies, which the
engine reads but does not write, and the learner reads but does not train on.

The two models have different vocabularies, so they cannot share one vLLM engine: each config lives in
its own spawned process (its own in-process engine, started once) and the parent asks them for one
iteration at a time, alternating (A B A B ...), so drifting machine load hits both alike; the idle one
waits on a pipe. Each iteration is `train_iteration` + the store commit (bench/iteration.py's
`one_iteration`); no eval, no checkpoints.

An iteration, cut into parts that sum to it (medians over the timed iterations; shares of their sum):
- generation: the engine writing the batch (single-turn: `generate`; multi-turn: every turn's call, env/engine_s)
- env_steps: waiting for the environment workers on the batch's resets and steps (env/step_s)
- rollout_other: the rest of the rollout phase (observation tokenising, bookkeeping)
- mc_generation: the engine writing the continuations (continue_from; multi-turn: mc/engine_s)
- replay: the environment side of the continuations spent rebuilding environments and replaying the
  recorded actions: mc/env_step_s (the wall-clock wait for the workers) x mc/env_replay_s / mc/env_worker_s
  (the workers' own share of their seconds that went to rebuilding and replaying)
- mc_env_steps: the rest of that wait (the continuations' new steps, the pool's dispatch)
- mc_other: the rest of the mc phase (states, seeds, values)
- learner: the policy update
- other: sync, grading, selection, the store commit
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.iteration import COMMON, compose_cfg

WARMUP, TIMED = 1, 4
SIZES = ["trainer.questions_per_iteration=8", "rollout.samples_per_question=8", "algo.mc_rollouts=4",
         "learner.minibatch_size=64"]  # one optimizer step on the 64 episodes, as the recipe does on its 128
CONFIGS = {  # name -> overrides on top of COMMON + SIZES
    "multiturn": ["experiment=guess", "algo=vineppo"],
    "singleturn": ["algo=vineppo"],  # data=arith, model=tiny: the default
}
PARTS = ("generation", "env_steps", "rollout_other", "mc_generation", "replay", "mc_env_steps", "mc_other",
         "learner", "other")


def _serve(conn, overrides: list[str], threads: int) -> None:
    """A config's process: build its Run on its own engine, then one iteration per request."""
    import torch

    from bench.iteration import TimedEngine, one_iteration, start_engine
    from rlreason.trainer.build import build
    from rlreason.trainer.loop import Phases
    from rlreason.trainer.produce import Producer

    torch.set_num_threads(threads)
    cfg = compose_cfg(*overrides)
    shared, engine_start = start_engine(cfg)
    run = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-multiturn-") as tmp:
            run = build(cfg, Path(tmp) / "run", TimedEngine(shared))
            phases = Phases(run.grader, {})
            producer = Producer(run, phases, 0)
            conn.send(("ready", engine_start))
            while (it := conn.recv()) is not None:
                secs, spent, metrics, _ = one_iteration(run, it, phases, producer)
                conn.send(("done", (secs, spent, metrics)))
            run.close(close_engine=False)
            run = None
    except BaseException as err:  # the parent must not wait forever for an answer
        conn.send(("error", f"{type(err).__name__}: {err}"))
        raise
    finally:
        if run is not None:
            run.close(close_engine=False, clean=False)
        shared.close()


def parts(secs: float, spent: dict[str, float], m: dict[str, float]) -> dict[str, float]:
    """One iteration cut into PARTS (seconds), summing to `secs`."""
    env = "env/engine_s" in m
    gen = m["env/engine_s"] if env else spent.get("engine_generate", 0.0)
    steps = m.get("env/step_s", 0.0)
    mc_gen = m["mc/engine_s"] if env else spent.get("engine_continue_from", 0.0)
    mc_env = m.get("mc/env_step_s", 0.0)
    worker = m.get("mc/env_worker_s", 0.0)
    replay = mc_env * m.get("mc/env_replay_s", 0.0) / worker if worker else 0.0
    out = {"generation": gen, "env_steps": steps, "rollout_other": spent.get("rollout", 0.0) - gen - steps,
           "mc_generation": mc_gen, "replay": replay, "mc_env_steps": mc_env - replay,
           "mc_other": spent.get("mc", 0.0) - mc_gen - mc_env, "learner": spent.get("learner", 0.0)}
    out["other"] = secs - sum(out.values())
    return out


def summarise(name: str, cfg, results: list[tuple[float, dict, dict]]) -> dict[str, Any]:
    med = statistics.median
    each = [parts(*r) for r in results]
    metrics = [r[2] for r in results]
    secs = [r[0] for r in results]
    median = {p: med(e[p] for e in each) for p in PARTS}
    total = sum(median.values())
    out: dict[str, Any] = {f"{name}/iteration_s": med(secs),
                           f"{name}/iteration_s_each": " ".join(f"{s:.2f}" for s in secs)}
    out |= {f"{name}/{p}_s": median[p] for p in PARTS}
    out |= {f"{name}/{p}_share": median[p] / total for p in PARTS}
    out[f"{name}/parts_sum_over_iteration"] = total / med(secs)  # medians of parts vs median iteration
    out[f"{name}/env_share"] = (median["env_steps"] + median["replay"] + median["mc_env_steps"]) / total
    out[f"{name}/replay_share"] = median["replay"] / total
    episodes = cfg.trainer.questions_per_iteration * cfg.rollout.samples_per_question
    obs = [m.get("env/observation_tokens", 0.0) for m in metrics]
    out[f"{name}/tokens/response_per_episode"] = med(m["train/response_tokens"] for m in metrics)
    out[f"{name}/tokens/generated_per_episode"] = med(m["train/response_tokens"] - o for m, o in zip(metrics, obs))
    out[f"{name}/tokens/observation_per_episode"] = med(obs)
    out[f"{name}/tokens/mc"] = med(m["mc/tokens"] for m in metrics)
    out[f"{name}/states/per_episode"] = med(m["mc/steps_per_episode"] for m in metrics)
    out[f"{name}/states/mc_unique"] = med(m["mc/unique_states"] for m in metrics)  # after dedup (single-turn)
    out[f"{name}/states/mc_continuations"] = med(m["mc/continuations"] for m in metrics)
    out[f"{name}/episodes"] = episodes
    out[f"{name}/train_reward"] = statistics.fmean(m["train/reward"] for m in metrics)
    if "env/engine_s" in metrics[0]:
        for key in ("env/turns", "env/step_jobs", "env/replayed_actions", "env/worker_s", "env/replay_s",
                    "mc/env_step_jobs", "mc/env_replayed_actions", "mc/env_worker_s", "mc/env_replay_s"):
            out[f"{name}/{key.replace('/', '_')}"] = med(m[key] for m in metrics)
    return out


def run(extra: tuple[str, ...] = (), warmup: int = WARMUP, timed: int = TIMED) -> dict[str, Any]:
    """`extra`: Hydra overrides for both configs (tiny sizes in tests)."""
    import torch

    plan = {name: [*SIZES, *ov, *extra] for name, ov in CONFIGS.items()}
    cfgs = {name: compose_cfg(*ov) for name, ov in plan.items()}  # bad overrides fail here, before any process
    ctx = mp.get_context("spawn")
    procs, conns, starts = {}, {}, {}
    results: dict[str, list] = {name: [] for name in plan}
    try:
        for name, ov in plan.items():  # one at a time: engine start-ups do not overlap
            conns[name], child = ctx.Pipe()
            procs[name] = ctx.Process(target=_serve, args=(child, ov, torch.get_num_threads()), name=f"bench-{name}")
            procs[name].start()
            starts[name] = _answer(conns[name], name)
        for it in range(1, warmup + timed + 1):
            for name in plan:
                conns[name].send(it)
                secs, spent, metrics = _answer(conns[name], name)
                print(f"[bench] iteration {it} {name}: {secs:.2f} s", flush=True)
                if it > warmup:
                    results[name].append((secs, spent, metrics))
    finally:
        for name, conn in conns.items():
            if procs[name].is_alive():
                try:
                    conn.send(None)
                except OSError:
                    pass
        for proc in procs.values():
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()

    out: dict[str, Any] = {}
    for name, cfg in cfgs.items():
        out |= summarise(name, cfg, results[name])
    mt, st = "multiturn", "singleturn"
    out["multiturn_over_singleturn"] = out[f"{mt}/iteration_s"] / out[f"{st}/iteration_s"]
    c = cfgs[mt]
    out |= {
        "config/multiturn": f"{c.model.name} on {c.data.name}, env.cls={c.env.cls}, env.max_turns={c.env.max_turns}, "
                            f"max_new_tokens={c.rollout.max_new_tokens}",
        "config/singleturn": f"{cfgs[st].model.name} on {cfgs[st].data.name}, "
                             f"max_new_tokens={cfgs[st].rollout.max_new_tokens}",
        "config/questions_per_iteration": int(c.trainer.questions_per_iteration),
        "config/samples_per_question": int(c.rollout.samples_per_question),
        "config/mc_rollouts": int(c.algo.mc_rollouts),
        "config/env_workers": int(c.reward.workers),
        "config/warmup_iterations": warmup,
        "config/timed_iterations": timed,
        "config/overrides": " ".join([*COMMON, *SIZES, *extra]),
        "engine_start_s": " ".join(f"{n}={s:.1f}" for n, s in starts.items()),
        "load_avg_1m_end": os.getloadavg()[0],
        "notes": NOTES,
    }
    return out


NOTES = ("Single-turn comparator: model=tiny on data=arith, the same tiny Llama (sizes, character-level "
         "tokenizer) as model=tiny_guess, at the same batch, K and recipe; arith responses have about as many "
         "generated tokens and value states per episode as a game's actions (tokens/, states/), so the engine "
         "and MC work is comparable and the difference is the environment: its workers, its replies' tokens "
         "and the replays. Not the same: single-turn MC shares continuations between equal prefixes (states/"
         "mc_unique), a game's states are never shared (each has its own environment), and a continuation "
         "carries the replies' tokens too (tokens/mc). Parts are medians over the timed iterations, shares of their sum (A B A B, "
         "one process per config). replay = mc/env_step_s x mc/env_replay_s / mc/env_worker_s: the workers' "
         "replay share of their seconds applied to the wall-clock wait, so the pool's dispatch is shared "
         "out in proportion. GuessNumber's step is microseconds: env time here is mostly the worker pool's "
         "round trips, a floor for any environment; a slower environment adds its own step time, and its "
         "replays grow with the turns replayed (mc_env_replayed_actions).")


def _answer(conn, name: str):
    kind, payload = conn.recv()
    if kind == "error":
        raise RuntimeError(f"bench multiturn: the {name} process failed: {payload}")
    return payload


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
