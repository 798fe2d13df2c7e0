"""How good are the PPO critic's values, and VinePPO's K-sample Monte-Carlo ones, at points of a PPO run?

    OMP_NUM_THREADS=1 python experiments/value_analysis.py RUN --iterations 10 20 30 --states 64 \\
        --k 1 4 9 --k-truth 256 --seed 0 -o OUTDIR

RUN is a PPO run dir with checkpoints at those iterations (`trainer.checkpoint_every=10
trainer.keep_checkpoints=null`, as experiment=sweep sets). Per checkpoint, with the checkpoint's policy
in rlreason's engine and the run's own data, sampling settings, grader and step rule:

1. trajectories: `--questions` training questions (default: as many as --states; the same questions at
   every checkpoint), the run's rollout.samples_per_question responses each;
2. states: every intermediate step boundary of every trajectory (not the prompt-only state, not the
   final one), identical prefixes once; `--states` of them drawn uniformly (experiments/value/states.py);
3. two alternative next steps a1 != a2 per state: continuations cut at their first step boundary; up to
   `--tries` pairs are drawn, a state with no distinct pair is dropped (counted);
4. for s, s + a1, s + a2: ground truth = mean reward of `--k-truth` continuations; MC-K = mean reward of
   K further continuations for each K in --k (`--mc-source fresh`, the default: no sample shared with the
   truth; `truth`: the first K of the truth's own, as the reference); critic = the checkpoint's
   ValueModel at the prefix's last token, where the learner reads it (experiments/value/estimates.py);
5. per estimator: MAE against the truth over every (s, s + a1, s + a2), and accuracy at ranking a1 vs a2
   over the pairs whose truth differs by more than a margin (experiments/value/metrics.py), beside the
   reference's rule (all pairs, ties wrong).

A multi-turn run (env.cls) is analysed at turn boundaries instead (experiments/value/turns.py): states
are turn starts, MC continuations replay the environment as VinePPO's credit per turn does, and the
report is the critic's and MC-K's MAE against the truth per turn index (no alternative steps, no figure).

Every sample has its own seed (rlreason.seeds: `--seed` as the run seed, the checkpoint's iteration, the
phases rollout / selection / mc for trajectories / alternatives / continuations), so a rerun gives the
same numbers. Writes OUTDIR/value_analysis.json (every number, the settings, timings, each state's
values; rewritten after every checkpoint) and OUTDIR/value_analysis.png, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from rlreason.config import ConfigError, StepsConfig, grader_task
from rlreason.seeds import PHASES, SeedStream

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `value` is experiments/value

from value import estimates, metrics, report, states, turns  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a PPO run dir (RUN/.hydra/config.yaml, RUN/checkpoints/iter_N)")
    p.add_argument("--iterations", type=int, nargs="+", help="checkpoint iterations (default: every one)")
    p.add_argument("--states", type=int, default=64, help="states per checkpoint")
    p.add_argument("--questions", type=int, help="training questions to sample trajectories on (default: --states)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 4, 9], help="MC estimators' sample counts")
    p.add_argument("--k-truth", type=int, default=256, help="samples of the ground truth")
    p.add_argument("--mc-source", choices=estimates.SOURCES, default="fresh",
                   help="fresh: MC-K samples of their own; truth: the first K of the truth's (the reference)")
    p.add_argument("--margin", type=float, help="fixed ranking margin (default: 2 x SE of the truth's difference)")
    p.add_argument("--tries", type=int, default=8, help="pairs of alternative steps drawn before a state is dropped")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", type=Path, default=Path("value-analysis"))
    return p.parse_args(argv)


def check(args: argparse.Namespace, samples_per_question: int = 1, max_turns: int | None = None) -> None:
    """Bad input fails here, before any model is loaded. `max_turns`: a multi-turn run's turn cap (its
    continuations take a block of mc seeds per turn)."""
    if args.states < 1 or args.tries < 1 or (args.questions is not None and args.questions < 1):
        raise ConfigError("--states, --questions and --tries must be at least 1")
    if args.k_truth < 2 or any(k < 1 for k in args.k):
        raise ConfigError("--k-truth must be at least 2 (its standard error needs two samples) and every --k "
                          "at least 1")
    if args.mc_source == "truth" and max(args.k) > args.k_truth:
        raise ConfigError(f"--mc-source truth takes MC-K from the truth's {args.k_truth} samples: every --k must be "
                          "at most --k-truth")
    if args.margin is not None and args.margin < 0:
        raise ConfigError("--margin must be >= 0")
    need = {"rollout": (args.questions or args.states) * samples_per_question,
            "selection": args.states * 2 * args.tries,
            "mc": 3 * args.states * estimates.samples_needed(args.k_truth, args.k, args.mc_source)}
    if max_turns is not None:  # no alternative steps; every turn of every continuation seeded
        need = {"rollout": need["rollout"] * max_turns, "selection": 0,
                "mc": args.states * estimates.samples_needed(args.k_truth, args.k, args.mc_source) * max_turns}
    for phase, count in need.items():
        if count > PHASES[phase][1]:
            raise ConfigError(f"{count} samples per checkpoint in seed phase {phase!r}, more than its "
                              f"{PHASES[phase][1]} (rlreason/seeds.py): lower --questions, --states, --tries, "
                              "--k-truth or --k")


def find_checkpoints(run_dir: Path, iterations: list[int] | None, critic: bool = True) -> list[tuple[int, Path]]:
    """`critic`: each checkpoint must hold one (experiments/value/drift.py reads a VinePPO run's, which has none)."""
    from rlreason.trainer import checkpoint

    root = run_dir / "checkpoints"
    found = {int(p.name.removeprefix(checkpoint.PREFIX)): p for p in checkpoint.list_checkpoints(root)}
    wanted = sorted(iterations) if iterations else sorted(found)
    if not wanted:
        raise ConfigError(f"{root} holds no checkpoint")
    missing = [i for i in wanted if i not in found]
    if missing:
        raise ConfigError(f"no checkpoint for iteration(s) {missing} in {root} (it has {sorted(found)}); a run keeps "
                          "them all with trainer.keep_checkpoints=null")
    for i in wanted:
        problem = checkpoint.verify(found[i])
        if problem is None and critic and not (found[i] / "critic.safetensors").is_file():
            problem = "no critic.safetensors (only algo=ppo runs have a critic)"
        if problem:
            raise ConfigError(f"checkpoint {found[i]}: {problem}")
    return [(i, found[i]) for i in wanted]


def load_config(run_dir: Path, critic: bool = True):
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: RUN must be a run dir made by python -m rlreason.run")
    cfg = OmegaConf.load(path)
    if critic and cfg.algo.name != "ppo":
        raise ConfigError(f"{run_dir} is an algo={cfg.algo.name} run: the analysis reads a PPO run's critic")
    return cfg


class Context:
    """What every checkpoint shares: the run's config, tokenizer, questions, grader and settings."""

    def __init__(self, cfg, args: argparse.Namespace, tokenizer, questions, grader, device: str, bf16: bool,
                 dtype=None):
        self.cfg, self.args, self.tokenizer, self.questions, self.grader = cfg, args, tokenizer, questions, grader
        self.device, self.bf16, self.dtype = device, bf16, dtype
        self.task = grader_task(cfg)
        self.steps = StepsConfig(**OmegaConf.to_container(cfg.data.steps, resolve=True))
        r = cfg.rollout
        self.sampling = dict(temperature=r.temperature, top_p=r.top_p, max_new_tokens=r.max_new_tokens,
                             stop=tuple(r.stop))
        self.estimators = ["critic", *(f"MC-{k}" for k in args.k)]


def make_context(cfg, args: argparse.Namespace) -> Context:
    """The run's tokenizer, `args.questions or args.states` training questions (drawn with --seed) and
    grader (close ctx.grader when done)."""
    import torch

    from rlreason.data import load_questions
    from rlreason.model.load import resolve_model_path
    from rlreason.reward import make_grader
    from rlreason.reward.meter import GradeMeter
    from rlreason.trainer.build import load_tokenizer, resolve_device

    model_path = resolve_model_path(cfg.model, os.path.expanduser(cfg.cache_dir))
    tokenizer = load_tokenizer(cfg, model_path)  # checkpoints hold weights only: the run's own tokenizer
    device, dtype = resolve_device(cfg)
    env_cls = OmegaConf.select(cfg, "env.cls")  # a run dir's config from before env.* has none
    train, _ = load_questions(cfg.data, needs_answer=not (OmegaConf.select(cfg, "reward.fn") or env_cls))
    questions = random.Random(args.seed).sample(train, min(args.questions or args.states, len(train)))
    grader = GradeMeter(make_grader(cfg.reward, grader_task(cfg)))
    # The learner's rule (Learner.autocast): bfloat16 autocast on a GPU unless the run is float32.
    bf16 = device != "cpu" and dtype != torch.float32
    return Context(cfg, args, tokenizer, questions, grader, device, bf16, dtype)


def start_engine(ctx: Context, ckpt: Path):
    """An engine holding checkpoint `ckpt`'s policy, as the run's engine settings say."""
    from rlreason.engine import make_engine
    from rlreason.trainer.build import context_length

    return make_engine(ctx.cfg.engine, str(ckpt / "policy"), ctx.tokenizer, seed=ctx.args.seed,
                       dtype=str(ctx.dtype).removeprefix("torch."),
                       max_model_len=context_length(ctx.cfg, str(ckpt / "policy")))


def draw_states(ctx: Context, engine, stream: SeedStream, iteration: int, tokens: dict, timings: dict) -> dict:
    """Steps 1-3 under the engine's policy: trajectories, states, a pair of alternative next steps each.
    Returns the episodes, the candidate pool, the states drawn and kept, every distinct prefix once and
    each kept state's (s, s + a1, s + a2) as prefix indices; fills `tokens` and `timings`."""
    from rlreason.data import prompt_template
    from rlreason.rollout import Roller

    args, cfg, tok = ctx.args, ctx.cfg, ctx.tokenizer
    version = engine.version
    t0 = time.perf_counter()

    roller = Roller(engine, tok, ctx.grader, task=ctx.task, template=prompt_template(cfg.data),
                    use_chat_template=cfg.data.use_chat_template, **ctx.sampling)
    roller.seeds, roller.version = stream, version
    episodes = [ep for g in roller(ctx.questions, cfg.rollout.samples_per_question) for ep in g]
    tokens["trajectories"] = sum(len(ep.response_ids) for ep in episodes)
    timings["trajectories_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    pool = states.boundary_states(episodes, tok, ctx.task, ctx.steps)
    chosen = states.pick_states(pool, args.states, random.Random(f"value-analysis/{args.seed}/{iteration}"))
    seed = stream.take("selection", len(chosen) * 2 * args.tries)
    tokens["alternatives"] = states.draw_alternatives(
        engine, chosen, tok, task=ctx.task, steps=ctx.steps, tries=args.tries, seed=seed, version=version,
        **ctx.sampling)
    kept = [s for s in chosen if s.actions is not None]
    timings["alternatives_s"] = time.perf_counter() - t

    # Every distinct prefix once: s + a of one state may be another state.
    index: dict[tuple[int, ...], int] = {}
    prefixes: list[states.Prefix] = []
    triples = []
    for s in kept:
        triple = []
        for p in (s.prefix, *s.actions):
            if p.key not in index:
                index[p.key] = len(prefixes)
                prefixes.append(p)
            triple.append(index[p.key])
        triples.append(tuple(triple))
    return {"episodes": episodes, "pool": pool, "chosen": chosen, "kept": kept, "prefixes": prefixes,
            "triples": triples}


def analyse_checkpoint(ctx: Context, engine, iteration: int, ckpt: Path) -> dict:
    args = ctx.args
    stream, version = SeedStream(args.seed, iteration), engine.version
    timings: dict[str, float] = {}
    tokens: dict[str, int] = {}
    t0 = time.perf_counter()
    drawn = draw_states(ctx, engine, stream, iteration, tokens, timings)
    episodes, pool, chosen, kept, prefixes, triples = (
        drawn[k] for k in ("episodes", "pool", "chosen", "kept", "prefixes", "triples"))

    t, graded = time.perf_counter(), ctx.grader.seconds
    n = estimates.samples_needed(args.k_truth, args.k, args.mc_source)
    rewards, tokens["continuations"] = estimates.continuation_rewards(
        engine, ctx.grader, prefixes, n=n, seed=stream.take("mc", len(prefixes) * n), version=version, **ctx.sampling)
    timings["grading_s"] = ctx.grader.seconds - graded
    timings["continuations_s"] = time.perf_counter() - t - timings["grading_s"]

    t = time.perf_counter()
    critic = estimates.load_critic(ckpt, ctx.device)
    critic_v = estimates.critic_values(critic, [list(p.key) for p in prefixes], ctx.tokenizer.pad_token_id, ctx.device,
                                        bf16=ctx.bf16)
    del critic
    timings["critic_s"] = time.perf_counter() - t

    split = [estimates.split_estimates(r, args.k_truth, args.k, args.mc_source) for r in rewards]
    values = {"truth": [e["truth"] for e in split], "truth_se": [e["truth_se"] for e in split], "critic": critic_v}
    for k in args.k:
        values[f"MC-{k}"] = [e["mc"][k] for e in split]
    timings["total_s"] = time.perf_counter() - t0
    return {
        "iteration": iteration, "checkpoint": str(ckpt),
        "summary": metrics.summarize(values, triples, ctx.estimators, args.margin),
        "counts": {"trajectories": len(episodes),
                   "trajectory_reward": sum(ep.reward for ep in episodes) / len(episodes),
                   "candidate_states": len(pool), "states_drawn": len(chosen), "dropped": len(chosen) - len(kept),
                   "states": len(kept), "prefixes": len(prefixes), "continuations": len(prefixes) * n},
        "tokens": tokens, "timings": {k: round(v, 2) for k, v in timings.items()},
        "states": [{"question": s.prefix.question.id, "draws": s.draws, "prefixes": list(tr)}
                   for s, tr in zip(kept, triples)],
        "prefixes": [{"response": p.text, "response_tokens": len(p.response_ids),
                      **{name: values[name][i] for name in values}} for i, p in enumerate(prefixes)],
    }


def run(args: argparse.Namespace, engine=None) -> dict:
    """The analysis as `args` says; returns the results dict (also written to OUT). `engine`: an already
    running engine (left open; tests share one), into which every checkpoint's weights are synced."""
    from rlreason.eval import load_weights

    check(args)
    cfg = load_config(args.run_dir)
    multi_turn = bool(OmegaConf.select(cfg, "env.cls"))  # env.cls: at turn boundaries (experiments/value/turns.py)
    check(args, cfg.rollout.samples_per_question, max_turns(cfg) if multi_turn else None)
    ckpts = find_checkpoints(args.run_dir, args.iterations)
    ctx = make_context(cfg, args)
    grader = ctx.grader
    analyse = turns.analyse_checkpoint if multi_turn else analyse_checkpoint
    settings = {"iterations": [i for i, _ in ckpts], **base_settings(ctx)}
    results = {"settings": settings, "checkpoints": []}
    args.out.mkdir(parents=True, exist_ok=True)
    own_engine = engine is None
    try:
        for n, (iteration, ckpt) in enumerate(ckpts):
            t = time.perf_counter()
            if own_engine and n == 0:
                engine = start_engine(ctx, ckpt)
            else:  # the next checkpoint's weights into the running engine, in place
                engine.sync_weights(load_weights(str(ckpt / "policy")), engine.version + 1)
            load_s = time.perf_counter() - t
            record = analyse(ctx, engine, iteration, ckpt)
            record["timings"]["engine_load_s"] = round(load_s, 2)
            results["checkpoints"].append(record)
            _write(args.out / "value_analysis.json", results)
            c, tm = record["counts"], record["timings"]
            if multi_turn:
                print(f"iteration {iteration}: {c['states']} turn starts of {c['candidate_states']}, "
                      f"{c['continuations']} continuations ({c['replay_mismatch']} replay mismatches), "
                      f"{record['tokens']['continuations']} tokens in {tm['total_s']:.0f} s", flush=True)
                continue
            print(f"iteration {iteration}: {c['states']} states ({c['dropped']} dropped), {c['prefixes']} prefixes, "
                  f"{c['continuations']} continuations, {record['tokens']['continuations']} tokens in "
                  f"{tm['total_s']:.0f} s (trajectories {tm['trajectories_s']:.1f} s, alternatives "
                  f"{tm['alternatives_s']:.1f} s, continuations {tm['continuations_s']:.1f} s, grading "
                  f"{tm['grading_s']:.1f} s, critic {tm['critic_s']:.1f} s)", flush=True)
    finally:
        grader.close()
        if own_engine and engine is not None:
            engine.close()
    if multi_turn:
        print(turns.markdown(results))
    else:
        report.plot(results, args.out / "value_analysis.png")
        print(report.markdown(results))
    print(args.out / "value_analysis.json")
    return results


def base_settings(ctx: Context) -> dict:
    args, cfg = ctx.args, ctx.cfg
    return {
        "run_dir": str(args.run_dir), "states": args.states, "questions": len(ctx.questions),
        "samples_per_question": cfg.rollout.samples_per_question, "k": args.k, "k_truth": args.k_truth,
        "mc_source": args.mc_source, "margin": args.margin, "tries": args.tries, "seed": args.seed,
        "task": ctx.task, "steps": OmegaConf.to_container(cfg.data.steps, resolve=True),
        **{k: v for k, v in ctx.sampling.items() if k != "stop"}, "engine": cfg.engine.name, "device": ctx.device,
        "env": OmegaConf.select(cfg, "env.cls"),
    }


def max_turns(cfg) -> int:
    """A multi-turn run's turn cap for the seed check: env.max_turns, else the token budget (a turn
    writes at least one token)."""
    cap = OmegaConf.select(cfg, "env.max_turns")
    return int(cap) if cap is not None else int(cfg.rollout.max_new_tokens)


def _write(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def cli(run_fn, parse_fn, argv: list[str] | None) -> None:
    """run_fn(parse_fn(argv)), a bad run dir or data one `rlreason:` line (this script's and drift.py's)."""
    from rlreason.data import DataError
    from rlreason.run import fail

    try:
        run_fn(parse_fn(argv))
    except (ConfigError, DataError) as e:
        fail(str(e))


def main(argv: list[str] | None = None) -> None:
    cli(run, parse, argv)


if __name__ == "__main__":
    main()
