"""Iteration benchmark: seconds per training iteration and per phase, VinePPO vs PPO vs GRPO, in one process.

    python -m bench.run iteration        (or via `make bench`, which calls run())

Each algorithm gets the default config (conf/config.yaml: embedded tiny model, data=arith, engine=vllm,
16 questions x 8 samples, VinePPO with its configured algo.mc_rollouts, and again as vineppo_k9 at the
paper's K = 9 when that is not the configured K) with the same seed, so the uniform curriculum hands
every algorithm the same questions and the same sampling seeds each iteration. One vLLM
engine serves every Run (only one in-process vLLM engine may live in a process); before each Run's
iteration its own learner's weights are pushed in (untimed), so the Runs interleave iteration by iteration
and any drift in machine load hits every algorithm alike. WARMUP iterations, then TIMED iterations, each
`train_iteration` + the store commit the loop does after it; no eval, no checkpoints.

Figures are means per timed iteration (`_best` ratios: of the fastest iterations). Phases are the loop's own (rlreason.trainer.loop.Phases): grading
is split out of the phase it happened in (rollout for all, mc for VinePPO); `other` is the rest of the
iteration (store writes, metrics). After the first iteration the policies differ, so the responses (and
VinePPO's states) differ a little between algorithms; the questions do not.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from rlreason.config import register_configs
from rlreason.validate import validate

CONF = str(Path(__file__).resolve().parents[1] / "conf")
ALGOS = ("vineppo", "ppo", "grpo")
PAPER_K = 9  # VinePPO paper's K (Kazemnejad et al., 2024); ~5x PPO's iteration time at 1.1B
WARMUP, TIMED = 1, 3
PHASES = ("selection", "rollout", "mc", "advantages", "learner", "sync", "grading")
# Only what a benchmark must change: no eval, no checkpoints, no progress bar. The rest is the default.
COMMON = ["trainer.eval_every=1000000", "trainer.checkpoint_every=1000000", "trainer.progress=false",
          "resume=never"]


def compose_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("config", overrides=[*COMMON, *overrides])
    validate(cfg)
    return cfg


# VinePPO's MC cost options (algo.mc, rlreason/algo/mc.py), each alone on top of the configured K, and the
# combination the results page's sweep runs (experiments/RESULTS.md, "VinePPO that pays for itself").
CUTS = {
    "v0group": ["algo.mc.v0=group"],
    "adaptive": ["algo.mc_rollouts=2", "algo.mc.max_rollouts=${algo.mc_rollouts_cap}"],
    "skipuniform": ["algo.mc.skip_uniform_groups=true"],
    "tree": ["algo.mc.tree=true"],
}


def variants(extra: tuple[str, ...], cuts: bool = True) -> dict[str, list[str]]:
    """name -> overrides: the three algorithms, VinePPO at the paper's K when that is not the default,
    and VinePPO with each MC cut (adaptive K: 2 first, up to the configured K where the first 2 disagree)."""
    out = {algo: [f"algo={algo}", *extra] for algo in ALGOS}
    k = compose_cfg("algo=vineppo", *extra).algo.mc_rollouts
    if k != PAPER_K:
        out[f"vineppo_k{PAPER_K}"] = ["algo=vineppo", *extra, f"algo.mc_rollouts={PAPER_K}"]
    for name, overrides in CUTS.items() if cuts else ():
        out[f"vineppo_{name}"] = ["algo=vineppo", *extra,
                                  *(o.replace("${algo.mc_rollouts_cap}", str(k)) for o in overrides)]
    return out


def start_engine(cfg):
    from rlreason.engine import make_engine
    from rlreason.model.load import resolve_model_path
    from rlreason.trainer.build import load_tokenizer, resolve_device

    model_path = resolve_model_path(cfg.model, Path(cfg.cache_dir).expanduser())
    _, dtype = resolve_device(cfg)
    t = time.perf_counter()
    engine = make_engine(cfg.engine, model_path, load_tokenizer(cfg, model_path),
                         dtype=str(dtype).removeprefix("torch."), seed=cfg.seed, max_model_len=cfg.model.max_model_len)
    return engine, time.perf_counter() - t


class TimedEngine:
    """The shared engine, counting the seconds inside generate (rollouts) and continue_from (VinePPO's MC),
    so the mc phase splits into engine time and the Python around it (step planning, dedup, texts)."""

    def __init__(self, engine):
        self.engine, self.seconds = engine, defaultdict(float)

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def _timed(self, key: str, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[key] += time.perf_counter() - t

    def generate(self, *args, **kwargs):
        return self._timed("generate", self.engine.generate, *args, **kwargs)

    def continue_from(self, *args, **kwargs):
        return self._timed("continue_from", self.engine.continue_from, *args, **kwargs)


def one_iteration(run, it: int, phases, producer=None) -> tuple[float, dict[str, float], dict[str, float], list[str]]:
    from rlreason.trainer.loop import train_iteration

    # The engine is shared: give it this Run's weights first (a sync resets the prefix cache too, as the
    # previous iteration's own sync would have). Untimed: the iteration's own sync is the timed one.
    run.engine.sync_weights(run.learner.named_weights(), run.learner.version)
    run.roller.version = run.learner.version
    before, engine_before, stats_before = dict(phases.seconds), dict(run.engine.seconds), run.engine.stats()
    t = time.perf_counter()
    metrics = train_iteration(run, it, phases, producer)
    run.store.commit(it)
    secs = time.perf_counter() - t
    spent = {k: v - before.get(k, 0.0) for k, v in phases.seconds.items()}
    spent |= {f"engine_{k}": v - engine_before.get(k, 0.0) for k, v in run.engine.seconds.items()}
    stats = run.engine.stats()
    queries = stats.get("prefix_cache_queries", 0.0) - stats_before.get("prefix_cache_queries", 0.0)
    if queries:
        metrics["engine/prefix_cache_hit_rate"] = (
            stats.get("prefix_cache_hits", 0.0) - stats_before.get("prefix_cache_hits", 0.0)) / queries
    questions = run.store.con.execute(  # which questions it trained on (committed just above)
        "SELECT DISTINCT question FROM attempts WHERE iteration = ? AND phase = 'train' ORDER BY question",
        (it,)).fetchall()
    return secs, spent, metrics, [q for (q,) in questions]


def summarise(name: str, cfg, secs: list[float], spent: list[dict[str, float]],
              metrics: list[dict[str, float]]) -> dict[str, Any]:
    mean = statistics.fmean
    iter_s = mean(secs)
    keys = sorted({p for s in spent for p in s if not p.startswith("engine_")})
    phase_s = {p: mean(s.get(p, 0.0) for s in spent) for p in keys}
    engine_s = {p: mean(s.get(f"engine_{p}", 0.0) for s in spent) for p in ("generate", "continue_from")}
    out: dict[str, Any] = {f"{name}/iteration_s": iter_s, f"{name}/iteration_min_s": min(secs),
                           f"{name}/iteration_s_each": " ".join(f"{s:.2f}" for s in secs)}
    for p in [*PHASES, *(p for p in phase_s if p not in PHASES)]:
        if p in phase_s:
            out[f"{name}/{p}_s"] = phase_s[p]
    out[f"{name}/other_s"] = iter_s - sum(phase_s.values())
    out[f"{name}/sync_seconds"] = phase_s.get("sync", 0.0)
    out[f"{name}/sync_fraction_of_iteration"] = phase_s.get("sync", 0.0) / iter_s
    episodes = cfg.trainer.questions_per_iteration * cfg.rollout.samples_per_question
    rollout_tokens = mean(m["train/response_tokens"] for m in metrics) * episodes
    out[f"{name}/rollout_tokens"] = rollout_tokens
    out[f"{name}/rollout_tokens_per_s"] = rollout_tokens / phase_s["rollout"] if phase_s.get("rollout") else 0.0
    out[f"{name}/train_reward"] = mean(m["train/reward"] for m in metrics)
    hits = [m["engine/prefix_cache_hit_rate"] for m in metrics if "engine/prefix_cache_hit_rate" in m]
    out[f"{name}/prefix_cache_hit_rate"] = mean(hits) if hits else "not exposed"
    if cfg.algo.name == "vineppo":
        out[f"{name}/mc_rollouts"] = int(cfg.algo.mc_rollouts)
        for key in ("states", "unique_states", "dedup_ratio", "continuations", "tokens", "steps_per_episode",
                    "rounds", "uniform_group_abs_adv_share"):
            out[f"{name}/mc_{key}"] = mean(m[f"mc/{key}"] for m in metrics)
        if cfg.algo.mc.tree:
            for key in ("eligible", "episodes", "tokens"):
                out[f"{name}/tree_{key}"] = mean(m.get(f"tree/{key}", 0.0) for m in metrics)
        # The mc phase (grading of the continuations excluded: that is the grading phase) = the engine's
        # continue_from + the Python around it.
        mc_s = phase_s.get("mc", 0.0)
        out[f"{name}/mc_engine_s"] = engine_s["continue_from"]
        out[f"{name}/mc_python_s"] = mc_s - engine_s["continue_from"]
        out[f"{name}/mc_tokens_per_s"] = out[f"{name}/mc_tokens"] / mc_s if mc_s else 0.0
        out[f"{name}/mc_engine_tokens_per_s"] = (out[f"{name}/mc_tokens"] / engine_s["continue_from"]
                                                 if engine_s["continue_from"] else 0.0)
        out[f"{name}/mc_fraction_of_iteration"] = mc_s / iter_s
    return out


Result = tuple[float, dict[str, float], dict[str, float], list[str]]  # one_iteration's


def interleaved(cfgs: dict[str, Any], iterations: int, prefix: str) -> tuple[dict[str, list[Result]], float]:
    """Every config as a Run on one shared engine, iterations 1..n taken round-robin (one of each Run,
    then the next), so drifting machine load hits all alike. Each name's one_iteration results in order,
    and the engine's start seconds."""
    from rlreason.trainer.build import build
    from rlreason.trainer.loop import Phases
    from rlreason.trainer.produce import Producer

    shared, engine_start = start_engine(next(iter(cfgs.values())))
    engine = TimedEngine(shared)
    runs: dict[str, Any] = {}
    results: dict[str, list[Result]] = {n: [] for n in cfgs}
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            try:
                for name, cfg in cfgs.items():
                    runs[name] = build(cfg, Path(tmp) / name.replace("/", "-"), engine)
                phases = {name: Phases(r.grader, {}) for name, r in runs.items()}
                # each Run's own schedule (trainer.async_level; bench/asynchronous.py compares the two)
                producers = {n: Producer(r, phases[n], r.cfg.trainer.async_level) for n, r in runs.items()}
                for it in range(1, iterations + 1):
                    for name, r in runs.items():
                        res = one_iteration(r, it, phases[name], producers[name])
                        sel = f" (selection {res[1]['selection']:.2f} s)" if res[1].get("selection") else ""
                        print(f"[bench] iteration {it} {name}: {res[0]:.2f} s{sel}", flush=True)
                        results[name].append(res)
            finally:
                for r in runs.values():
                    r.close(close_engine=False)
    finally:
        shared.close()
    return results, engine_start


def run(extra: tuple[str, ...] = (), warmup: int = WARMUP, timed: int = TIMED) -> dict[str, Any]:
    """`extra`: Hydra overrides for every Run (tiny sizes while developing); the benchmark uses none."""
    plan = variants(extra)
    cfgs = {name: compose_cfg(*ov) for name, ov in plan.items()}
    base = next(iter(cfgs.values()))
    results, engine_start = interleaved(cfgs, warmup + timed, "bench-iteration-")
    timed_res = {n: rs[warmup:] for n, rs in results.items()}
    secs = {n: [r[0] for r in rs] for n, rs in timed_res.items()}
    spent = {n: [r[1] for r in rs] for n, rs in timed_res.items()}
    metrics = {n: [r[2] for r in rs] for n, rs in timed_res.items()}
    questions = {n: [r[3] for r in rs] for n, rs in results.items()}

    out: dict[str, Any] = {}
    for name, cfg in cfgs.items():
        out |= summarise(name, cfg, secs[name], spent[name], metrics[name])
    for name in cfgs:
        if name.startswith("vineppo_") and "vineppo" in cfgs:  # each cut against plain VinePPO
            out[f"{name}_over_vineppo"] = out[f"{name}/iteration_s"] / out["vineppo/iteration_s"]
            out[f"{name}_mc_tokens_over_vineppo"] = out[f"{name}/mc_tokens"] / out["vineppo/mc_tokens"]
        if name.startswith("vineppo"):
            for other in ("ppo", "grpo"):
                out[f"{name}_over_{other}"] = out[f"{name}/iteration_s"] / out[f"{other}/iteration_s"]
                # On the fastest iterations: other work on a shared machine only ever slows one down.
                out[f"{name}_over_{other}_best"] = out[f"{name}/iteration_min_s"] / out[f"{other}/iteration_min_s"]
    first = questions[next(iter(cfgs))]
    out["same_questions"] = str(all(q == first for q in questions.values()) and all(first))
    c = base
    out |= {
        "config/model": f"{c.model.name} ({c.model.path})",
        "config/data": c.data.name,
        "config/engine": c.engine.name,
        "config/seed": int(c.seed),
        "config/questions_per_iteration": int(c.trainer.questions_per_iteration),
        "config/samples_per_question": int(c.rollout.samples_per_question),
        "config/max_new_tokens": int(c.rollout.max_new_tokens),
        "config/minibatch_size": int(c.learner.minibatch_size),
        "config/micro_batch_size": int(c.learner.micro_batch_size),
        "config/epochs": int(c.learner.epochs),
        "config/mc_rollouts": int(cfgs["vineppo"].algo.mc_rollouts),
        "config/warmup_iterations": warmup,
        "config/timed_iterations": timed,
        "config/overrides": " ".join([*COMMON, *extra]),
        "engine_start_s": engine_start,
        "load_avg_1m_end": os.getloadavg()[0],  # the machine record has it at the start
    }
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
