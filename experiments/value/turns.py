"""value_analysis.py on a multi-turn run (env.cls): the PPO critic against Monte-Carlo at turn boundaries.

Per checkpoint, with the checkpoint's policy and the run's environment (rlreason/envs/):

1. trajectories: the context's questions, the run's rollout.samples_per_question episodes each, played
   turn by turn as in training (Roller with the run's Env);
2. states: the start of every stepped turn of every episode (turn 0 = prompt + reset(); turn t > 0 =
   after observation t's tokens), `--states` of them drawn uniformly;
3. MC: from each state, continuations exactly as VinePPO's credit per turn plays them
   (rlreason/envs/credit.py: a fresh environment replays the recorded actions, then the engine and the
   environment play on to the end); value = mean return-to-go (the rewards of the turns from the state
   on). The truth is the mean of `--k-truth` of them, MC-K the mean of K more (or of the truth's first K);
4. critic: the checkpoint's ValueModel at the state's last token, where the learner's GAE reads it
   (rlreason/envs/gae.py bootstraps a turn's start from the value before its first action token);
5. per turn index and over all states: each estimator's MAE against the truth (± SE over states), the
   mean truth and the mean estimate (the critic's bias shows as their difference).

Seeds: trajectories from the phase `rollout`, continuations from `mc` (each turn a fresh block), so a
rerun gives the same numbers.
"""

from __future__ import annotations

import random
import time

from rlreason.seeds import SeedStream

from . import estimates
from .metrics import _mean_se


def turn_states(episodes) -> list[tuple[int, int]]:
    """(episode index, turn) of every stepped turn's start, in episode order."""
    return [(e, t) for e, ep in enumerate(episodes) for t in range(len(ep.env.spans))]


def per_turn(values: dict[str, list[float]], turns: list[int], estimators: list[str]) -> dict:
    """MAE (± SE), mean truth and mean estimate per turn index ("all": every state)."""
    out = {}
    for key in ["all", *sorted(set(turns))]:
        idx = [i for i, t in enumerate(turns) if key == "all" or t == key]
        truth = [values["truth"][i] for i in idx]
        row = {"states": len(idx), "truth_mean": sum(truth) / len(idx) if idx else None, "estimators": {}}
        for name in estimators:
            est = [values[name][i] for i in idx]
            mae, mae_se = _mean_se([abs(a - b) for a, b in zip(est, truth)])
            row["estimators"][name] = {"mae": mae, "mae_se": mae_se, "mean": sum(est) / len(idx) if idx else None}
        out[str(key)] = row
    return out


def analyse_checkpoint(ctx, engine, iteration: int, ckpt) -> dict:
    """The per-turn analysis of one checkpoint (value_analysis.analyse_checkpoint's multi-turn twin)."""
    from rlreason.data import prompt_template
    from rlreason.envs.credit import State, continuation
    from rlreason.envs.setup import make_env
    from rlreason.rollout import Roller

    args, cfg, tok = ctx.args, ctx.cfg, ctx.tokenizer
    stream, version = SeedStream(args.seed, iteration), engine.version
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    env = make_env(cfg, engine, tok)
    try:
        roller = Roller(engine, tok, ctx.grader, task=ctx.task, template=prompt_template(cfg.data),
                        use_chat_template=cfg.data.use_chat_template, **ctx.sampling)
        roller.env, roller.seeds, roller.version = env, stream, version
        episodes = [ep for g in roller(ctx.questions, cfg.rollout.samples_per_question) for ep in g]
        timings["trajectories_s"] = time.perf_counter() - t0

        pool = turn_states(episodes)
        rng = random.Random(f"value-analysis/{args.seed}/{iteration}")
        chosen = sorted(rng.sample(range(len(pool)), min(args.states, len(pool))))
        chosen = [pool[i] for i in chosen]
        n = estimates.samples_needed(args.k_truth, args.k, args.mc_source)
        t = time.perf_counter()
        states = [State(episodes[e].env.spans[turn][0], turn, 0) for e, turn in chosen]
        plays = [continuation(episodes[e], s) for (e, _), s in zip(chosen, states) for _ in range(n)]
        starts = [len(p.transcript.rewards) for p in plays]
        if plays:
            env.turns.play(plays, temperature=ctx.sampling["temperature"], top_p=ctx.sampling["top_p"],
                           version=version, seeds=stream, phase="mc")
        timings["continuations_s"] = time.perf_counter() - t
    finally:
        env.close()
    returns = [sum(p.transcript.turn_totals()[s:]) for p, s in zip(plays, starts)]
    split = [estimates.split_estimates(returns[i * n:(i + 1) * n], args.k_truth, args.k, args.mc_source)
             for i in range(len(chosen))]

    t = time.perf_counter()
    prefixes = [list(episodes[e].prompt_ids) + list(episodes[e].response_ids[:s.position])
                for (e, _), s in zip(chosen, states)]
    critic = estimates.load_critic(ckpt, ctx.device)
    critic_v = estimates.critic_values(critic, prefixes, tok.pad_token_id, ctx.device, bf16=ctx.bf16)
    del critic
    timings["critic_s"] = time.perf_counter() - t

    values = {"truth": [e["truth"] for e in split], "truth_se": [e["truth_se"] for e in split], "critic": critic_v}
    for k in args.k:
        values[f"MC-{k}"] = [e["mc"][k] for e in split]
    turns = [turn for _, turn in chosen]
    timings["total_s"] = time.perf_counter() - t0
    return {
        "iteration": iteration, "checkpoint": str(ckpt),
        "per_turn": per_turn(values, turns, ctx.estimators),
        "counts": {"trajectories": len(episodes),
                   "trajectory_reward": sum(ep.reward for ep in episodes) / max(len(episodes), 1),
                   "candidate_states": len(pool), "states": len(chosen), "continuations": len(plays),
                   "replay_mismatch": sum(p.transcript.end == "mismatch" for p in plays),
                   "env_failures": sum(p.transcript.end in ("timeout", "error") for p in plays)},
        "tokens": {"trajectories": sum(len(ep.response_ids) for ep in episodes),
                   "continuations": sum(len(p.response_ids) for p in plays) - n * sum(s.position for s in states)},
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "states": [{"question": episodes[e].question.id, "turn": turn, "position": s.position,  # response tokens
                    **{name: values[name][i] for name in values}}
                   for i, ((e, turn), s) in enumerate(zip(chosen, states))],
    }


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [f"Critic and MC-K against the ground truth (MC, K = {s['k_truth']}) at turn boundaries of "
             f"{s['run_dir']} (env.cls {s['env']}): up to {s['states']} turn starts per checkpoint. "
             "± = standard error over states.", "",
             "| iteration | turn | states | truth mean | estimator | MAE | mean |", "|---|---|---|---|---|---|---|"]
    for ck in results["checkpoints"]:
        for turn, row in ck["per_turn"].items():
            for i, (name, e) in enumerate(row["estimators"].items()):
                lead = (f"| {ck['iteration']} | {turn} | {row['states']} | {_fmt(row['truth_mean'])} " if i == 0
                        else "| | | | ")
                lines.append(f"{lead}| {name} | {_fmt(e['mae'], e['mae_se'])} | {_fmt(e['mean'])} |")
    return "\n".join(lines)


def _fmt(x: float | None, se: float | None = None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" + (f" ± {se:.3f}" if se is not None else "")
