"""rlreason's GRPO side by side with TRL's GRPOTrainer: same model dir, task, settings, several seeds.

    pip install -e '.[peer]'                     # trl (1.16) next to the project
    OMP_NUM_THREADS=1 python experiments/peer_trl.py --steps 100 --seeds 3 --eval-every 25 --out peer-out
    python experiments/peer_trl.py --out peer-out --aggregate-only        # the table again, from the JSONs

Each (framework, seed) runs in its own process, one after another (the frameworks alternate, so a busy
machine slows both alike), and writes `OUT/runs/<framework>-s<seed>.json`: greedy held-out accuracy at
step 0, every `--eval-every` steps and at the end, seconds per step without eval and checkpoints, the
framework's per-step logs (reward, entropy, grad norm, ...) and the questions drawn at every step. A run
whose JSON exists is skipped, so an interrupted comparison continues. `OUT/summary.json` and the printed
table give mean ± std [min, max] over seeds per eval step, and rlreason minus TRL with Welch's standard
error and the exact permutation p-value. The start model (`--model`, built when missing) and the task are
described in experiments/peer/task.py: a non-default arith task (any multiplier, `invertible=false`) and
a shorter SFT than the committed tiny model's.

Settings (TRL 1.16 GRPOConfig field -> rlreason override), read from trl/trainer/grpo_{config,trainer}.py:

| setting | TRL GRPOConfig | rlreason |
|---|---|---|
| prompts x completions per step | per_device_train_batch_size=128, num_generations=8, gradient_accumulation_steps=1 (generation_batch_size = 128) | trainer.questions_per_iteration=16, rollout.samples_per_question=8 |
| optimizer steps per batch | num_iterations=1, steps_per_generation=1 | learner.epochs=1, learner.minibatch_size=128 (2 micro-batches of 64) |
| old log-probs | the step's own forward, detached | the same (Learner.needs_old_logprobs is False) |
| advantage | scale_rewards="group": (r - mean) / (std + 1e-4), std with Bessel's n-1 | algo.normalize_std=true: (r - mean) / (std + 1e-6), population std (a common factor sqrt(7/8) on every advantage; Adam undoes a constant scale) |
| loss aggregation | loss_type="dapo" (default): sum over tokens / tokens in the batch | token-level: sum / tokens in the minibatch (algo/losses.py) |
| clip | epsilon=0.2 (epsilon_high = epsilon), delta=None | algo.clip_eps=0.2 |
| KL | beta=0.0 (default; no reference model) | algo.kl_coef=0.0 (no reference model) |
| truncated completions | mask_truncated_completions=False; reward 0 (our reward function gets the cut flag) | trained on; the grader's `truncated` verdict, reward 0 |
| sampling | temperature=1.0, top_p=1.0, top_k=0, max_completion_length=96, transformers generate | rollout.temperature=1.0, top_p=1.0, max_new_tokens=96, vLLM (engine=vllm) |
| optimizer | optim="adamw_torch", betas (0.9, 0.999), eps 1e-8, weight_decay=0.0 | torch AdamW, learner.betas=[0.9,0.999], eps 1e-8, learner.weight_decay=0.0 |
| learning rate | learning_rate=1e-4, lr_scheduler_type=constant (--schedule; TRL's default is linear), warmup 0 | learner.lr=1e-4, learner.schedule=constant, warmup_ratio=0 |
| grad clip | max_grad_norm=1.0 | learner.grad_clip=1.0 |
| precision | use_cpu, bf16=False, float32 weights, gradient_checkpointing=False | float32 on CPU |
| question order | RepeatSampler, shuffled with `seed`, without replacement | curriculum=uniform: seeded permutation per epoch |
| seed | seed=s (accelerate set_seed: python, numpy, torch) | seed=s (vLLM per-request seeds, learner, curriculum) |
| eval | rlreason's Roller + Grader on engine=hf, greedy, 96 tokens, test[:300] (peer/evaluation.py) | the loop's greedy eval on vLLM, trainer.eval_max_questions=300 |
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `peer` is experiments/peer

from peer import stats, task  # noqa: E402

FRAMEWORKS = ("trl", "rlreason")
# rlreason-spaced: a diagnostic, rlreason with no seed shared between engine calls (peer/rl_run.py)
CHOICES = (*FRAMEWORKS, "rlreason-spaced")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (plus --first-seed)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma list of " + ", ".join(CHOICES))
    p.add_argument("--model", default="peer-model", help="start model dir (built here when missing)")
    p.add_argument("--out", default="peer-out")
    for key in ("lr", "schedule", "max_new_tokens", "eval_questions"):
        p.add_argument(f"--{key.replace('_', '-')}", type=type(task.SETTINGS[key]), default=task.SETTINGS[key])
    p.add_argument("--aggregate-only", action="store_true", help="only summarise OUT/runs/*.json")
    p.add_argument("--one", choices=CHOICES, help=argparse.SUPPRESS)  # child process: one run
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def settings(args: argparse.Namespace) -> dict:
    return task.SETTINGS | {k: getattr(args, k) for k in ("lr", "schedule", "max_new_tokens", "eval_questions")}


def run_one(args: argparse.Namespace) -> None:
    """Child process: one run, its record to OUT/runs/<framework>-s<seed>.json."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    work = out / "work" / f"{args.one}-s{args.seed}"
    if args.one == "trl":
        from peer import trl_run

        record = trl_run.run(args.model, str(work), args.seed, args.steps, args.eval_every, settings(args))
    else:
        from peer import rl_run

        record = rl_run.run(args.model, str(work), args.seed, args.steps, args.eval_every, settings(args),
                            spaced=args.one == "rlreason-spaced")
    record |= {"settings": settings(args), **task.settings_record()}
    path = out / "runs" / f"{args.one}-s{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(record))
    path.with_suffix(".tmp").replace(path)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.one:
        return run_one(args)
    out, runs = Path(args.out), Path(args.out) / "runs"
    if not args.aggregate_only:
        if not (Path(args.model) / "build_info.json").is_file():
            print(f"building the start model into {args.model} ...", flush=True)
        info = task.build_model(args.model)
        print(f"start model {args.model}: {info['params']} params, greedy {info['greedy_acc']:.1%} on the "
              f"{info['n_questions']} test questions (build's own check)", flush=True)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        for seed in seeds:
            for fw in args.frameworks.split(","):
                if (runs / f"{fw}-s{seed}.json").is_file():
                    continue
                cmd = [sys.executable, __file__, "--one", fw, "--seed", str(seed), *passthrough(args)]
                log = out / "logs" / f"{fw}-s{seed}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                t0 = time.time()
                with log.open("w") as f:
                    rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}).returncode
                print(f"{fw} seed {seed}: {'done' if rc == 0 else f'FAILED (exit {rc}), see {log}'} "
                      f"in {time.time() - t0:.0f} s", flush=True)
    summary = stats.summarise(stats.load_runs(runs))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(stats.table(summary))


def passthrough(args: argparse.Namespace) -> list[str]:
    return ["--steps", str(args.steps), "--eval-every", str(args.eval_every), "--model", args.model,
            "--out", args.out, "--lr", str(args.lr), "--schedule", args.schedule,
            "--max-new-tokens", str(args.max_new_tokens), "--eval-questions", str(args.eval_questions)]


if __name__ == "__main__":
    main()
