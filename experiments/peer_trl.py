"""rlreason side by side with TRL on one HF model dir, task and settings, several seeds: GRPO against
TRL's GRPOTrainer, RLOO against TRL's RLOOTrainer.

    pip install -e '.[peer]'                     # trl (1.16) next to the project
    OMP_NUM_THREADS=1 python experiments/peer_trl.py --steps 100 --seeds 6 --eval-every 25 --out peer-out
    python experiments/peer_trl.py --out peer-out --aggregate-only        # the table again, from the JSONs

Your own model and task: any HF causal-LM dir and two JSONL files of {"prompt": ..., "answer": ...} rows
(the prompt field is given to the model as it is; name other fields with --problem-field/--answer-field):

    python experiments/peer_trl.py --model DIR --train train.jsonl --test test.jsonl \
        --problem-field prompt --answer-field answer --checker hash --algo grpo,rloo --seeds 6 --out OUT

Both frameworks read the rows through rlreason's loader (data=jsonl) and grade with rlreason's grader
(reward.checker; `hash`: the response's "#### N" against the gold answer), see experiments/peer/source.py.
A missing file or field stops the run before anything is computed. Without --train/--test the built-in
task is used (experiments/peer/task.py: a non-default arith task, and a start model built into --model
when that dir holds no model).

Each (framework, algo, seed) runs in its own process, one after another, alternating the frameworks so a
busy machine slows both alike, and writes `OUT/runs/<framework>-<algo>-s<seed>.json`: greedy held-out
accuracy at step 0, every `--eval-every` steps and at the end, seconds per step without eval and
checkpoints, the framework's per-step logs and the questions drawn at every step. A run whose JSON
exists is skipped, so an interrupted comparison continues. `OUT/summary.json` and the printed table give
per eval step the mean with its 95% t-interval over seeds, and rlreason minus TRL (same algo) with
Welch's 95% interval and the exact permutation p-value; the same for seconds per step. Figures:
`python experiments/peer/plot.py OUT`; per-run training signals: `python experiments/peer/analyse.py OUT/runs`.

The settings of each side, read from TRL 1.16's grpo_*/rloo_* config and trainer code, and where the
two algorithms differ inside: experiments/peer/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `peer` is experiments/peer

from peer import stats, task  # noqa: E402
from peer.source import CHECKERS, Source  # noqa: E402

SIDES = ("trl", "rlreason")
ALGOS = ("grpo", "rloo")  # the baselines TRL also has
# rlreason-vineppo: rlreason's VinePPO at the same settings (its K from conf/), compared per step with
# TRL's GRPO (TRL has no VinePPO); run once whatever --algo says.
EXTRA = ("rlreason-vineppo",)
RUN_NAMES = (*(f"{side}-{algo}" for algo in ALGOS for side in SIDES), *EXTRA)
KEYS = ("lr", "schedule", "max_new_tokens", "eval_questions")
# Run files written before --algo existed: a resumed comparison must not run (and count) those seeds again.
LEGACY = {"trl-grpo": "trl", "rlreason-grpo": "rlreason"}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seeds", type=int, default=6, help="seeds 0..N-1 (plus --first-seed); fewer than 6 a side "
                   "could not tell a 4-point gap from seed noise on the issue #19 task")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--algo", default=",".join(ALGOS), help="comma list of " + ", ".join(ALGOS))
    p.add_argument("--frameworks", default=",".join(SIDES), help="comma list of " + ", ".join((*SIDES, *EXTRA)))
    p.add_argument("--model", default="peer-model", help="start model: any HF causal-LM dir (with --train/--test "
                   "it must exist; for the built-in task it is built here when the dir holds no model)")
    p.add_argument("--sft-steps", type=int, default=task.BUILD["sft_steps"], help="SFT steps of the built-in "
                   "task's start model when it is built here (more: a stronger start model)")
    p.add_argument("--train", help="JSONL of training rows (with --test); default: the built-in arith task")
    p.add_argument("--test", help="JSONL of held-out rows; the first --eval-questions are evaluated")
    p.add_argument("--problem-field", default="prompt", help="row field holding the prompt, given as it is")
    p.add_argument("--answer-field", default="answer", help="row field holding the gold answer")
    p.add_argument("--checker", default="hash", choices=CHECKERS, help="how both sides grade (reward.checker)")
    p.add_argument("--chat", action="store_true", help="prompt both sides with the model's chat template (the "
                   "question as the user's turn), e.g. the model=tiny_chat kind of model")
    p.add_argument("--out", default="peer-out")
    for key in KEYS:
        p.add_argument(f"--{key.replace('_', '-')}", type=type(task.SETTINGS[key]), default=task.SETTINGS[key])
    p.add_argument("--aggregate-only", action="store_true", help="only summarise OUT/runs/*.json")
    p.add_argument("--one", choices=RUN_NAMES, help=argparse.SUPPRESS)  # child process: one run
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, given, allowed in (("--algo", args.algo, ALGOS), ("--frameworks", args.frameworks, (*SIDES, *EXTRA))):
        if bad := [x for x in given.split(",") if x not in allowed]:
            p.error(f"{name}: {', '.join(bad)} not in {', '.join(allowed)}")
    try:
        args.source = Source(args.train, args.test, args.problem_field, args.answer_field, args.checker, args.chat)
    except ValueError as e:
        p.error(str(e))
    return args


def settings(args: argparse.Namespace) -> dict:
    return task.SETTINGS | {k: getattr(args, k) for k in KEYS}


def run_names(args: argparse.Namespace) -> list[str]:
    """Per seed, in this order: the frameworks alternate within each algo."""
    names = [f"{fw}-{algo}" for algo in args.algo.split(",") for fw in args.frameworks.split(",") if fw in SIDES]
    return names + [fw for fw in args.frameworks.split(",") if fw in EXTRA]


def run_one(args: argparse.Namespace) -> None:
    """Child process: one run, its record to OUT/runs/<name>-s<seed>.json."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    work = out / "work" / f"{args.one}-s{args.seed}"
    side, algo = args.one.split("-", 1)
    if side == "trl":
        from peer import trl_run

        record = trl_run.run(algo, args.source, args.model, str(work), args.seed, args.steps, args.eval_every,
                             settings(args))
    else:
        from peer import rl_run

        record = rl_run.run(args.model, str(work), args.seed, args.steps, args.eval_every, settings(args),
                            algo=algo, source=args.source)
    record |= {**args.source.record(), "settings": settings(args), "model": str(Path(args.model).resolve())}
    path = out / "runs" / f"{args.one}-s{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(record))
    path.with_suffix(".tmp").replace(path)


def preflight(args: argparse.Namespace) -> None:
    """Everything that can be wrong before compute: TRL missing, the files, their fields, the model dir."""
    from rlreason.data.record import DataError

    if "trl" in args.frameworks.split(",") and importlib.util.find_spec("trl") is None:
        sys.exit("peer_trl: TRL is not installed: pip install -e '.[peer]' (trl 1.16)")
    try:
        train, test, _ = args.source.load()
    except DataError as e:
        sys.exit(f"peer_trl: {e}")
    if len(train) < task.SETTINGS["questions_per_step"]:
        sys.exit(f"peer_trl: {len(train)} training rows, fewer than the {task.SETTINGS['questions_per_step']} "
                 "questions of one step")
    model = Path(args.model)
    if args.source.chat and not chat_model(model):
        sys.exit(f"peer_trl: --chat needs --model to be a model dir whose tokenizer has a chat template, e.g. "
                 f"rlreason/model/assets/tiny-chat (model=tiny_chat's); {model} has none")
    if (model / "config.json").is_file():
        info = model / "build_info.json"
        build = json.loads(info.read_text()) if info.is_file() else {}
        # The built-in task's own start model is built with --sft-steps; a chat model is brought as it is.
        if args.source.builtin and not args.source.chat and build and build["build"]["sft_steps"] != args.sft_steps:
            sys.exit(f"peer_trl: --model {model} was built with {build['build']['sft_steps']} SFT steps, not "
                     f"--sft-steps {args.sft_steps}: give another dir to build it there")
        built = f" ({build['greedy_acc']:.1%} greedy at its build)" if build else ""
        print(f"start model {model}{built}; {len(train)} train, {len(test)} test questions", flush=True)
    elif args.source.builtin:
        print(f"building the start model into {model} ...", flush=True)
        info = task.build_model(model, sft_steps=args.sft_steps)
        print(f"start model {model}: {info['params']} params, greedy {info['greedy_acc']:.1%} on the "
              f"{info['n_questions']} test questions (build's own check)", flush=True)
    else:
        sys.exit(f"peer_trl: --model {model}: no HF model there (no config.json)")


def chat_model(model: Path) -> bool:
    """Whether `model` is a model dir whose tokenizer has a chat template."""
    if not (model / "config.json").is_file():
        return False
    from transformers import AutoTokenizer

    return bool(AutoTokenizer.from_pretrained(model).chat_template)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.one:
        return run_one(args)
    out, runs = Path(args.out), Path(args.out) / "runs"
    if not args.aggregate_only:
        preflight(args)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name in run_names(args):
                if any((runs / f"{n}-s{seed}.json").is_file() for n in (name, LEGACY.get(name, name))):
                    continue
                cmd = [sys.executable, __file__, "--one", name, "--seed", str(seed), *passthrough(args)]
                log = out / "logs" / f"{name}-s{seed}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                t0 = time.time()
                with log.open("w") as f:
                    rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}).returncode
                print(f"{name} seed {seed}: {'done' if rc == 0 else f'FAILED (exit {rc}), see {log}'} "
                      f"in {time.time() - t0:.0f} s", flush=True)
    records = stats.load_runs(runs)
    if not records:
        sys.exit(f"peer_trl: no run records in {runs}")
    summary = stats.summarise(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(stats.table(summary))


def passthrough(args: argparse.Namespace) -> list[str]:
    data = [] if args.source.builtin else ["--train", args.train, "--test", args.test]
    return ["--steps", str(args.steps), "--eval-every", str(args.eval_every), "--model", args.model,
            "--out", args.out, *data, "--problem-field", args.problem_field, "--answer-field", args.answer_field,
            "--checker", args.checker, *(["--chat"] if args.chat else []), *(x for k in KEYS for x in (f"--{k.replace('_', '-')}", str(getattr(args, k))))]


if __name__ == "__main__":
    main()
