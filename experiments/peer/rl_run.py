"""One rlreason run (algo=grpo, rloo or vineppo) on the comparison's questions -> a run record (dict, JSON-ready)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from peer.source import Source

CONF = Path(__file__).resolve().parents[2] / "conf"


def overrides(model_dir: str, seed: int, steps: int, eval_every: int, s: dict[str, Any], algo: str = "grpo",
              engine: str = "vllm", source: Source | None = None) -> list[str]:
    """The Hydra overrides that set rlreason to the settings TRL runs with (experiments/peer/README.md)."""
    source = source or Source()
    # GRPO's std scaling as TRL's scale_rewards="group"; rloo has no such switch (TRL's RLOO: normalize_advantages=False)
    std = ["algo.normalize_std=true"] if algo in ("grpo", "vineppo") else []
    return [
        f"algo={algo}", "model=hf", f"model.path={model_dir}", f"engine={engine}",
        "curriculum=uniform", "logger=console", f"seed={seed}", "resume=never", *source.overrides(),
        "algo.kl_coef=0.0", f"algo.clip_eps={s['clip_eps']}", *std,
        f"rollout.samples_per_question={s['samples_per_question']}", f"rollout.temperature={s['temperature']}",
        "rollout.top_p=1.0", f"rollout.max_new_tokens={s['max_new_tokens']}",
        f"learner.lr={s['lr']}", f"learner.schedule={s['schedule']}", "learner.warmup_ratio=0.0",
        "learner.weight_decay=0.0", "learner.betas=[0.9,0.999]", f"learner.grad_clip={s['grad_clip']}",
        "learner.epochs=1", f"learner.minibatch_size={s['questions_per_step'] * s['samples_per_question']}",
        f"trainer.iterations={steps}", f"trainer.questions_per_iteration={s['questions_per_step']}",
        f"trainer.eval_every={eval_every}", "trainer.eval_samples=1", "trainer.eval_greedy=true",
        f"trainer.eval_max_questions={s['eval_questions']}", f"trainer.checkpoint_every={steps}",
        "trainer.progress=false",
    ]


def cpu_clock(loop) -> dict[str, float]:
    """Process CPU seconds of the training loop less its evals and checkpoints (a busy shared machine
    stretches wall-clock time, much less CPU time). Wraps the loop's functions; changes nothing else."""
    cpu = {"loop": 0.0, "excluded": 0.0}

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            c0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[key] += time.process_time() - c0
        return wrapper

    loop._loop = timed(loop._loop, "loop")
    loop.run_eval = timed(loop.run_eval, "excluded")
    loop.save_checkpoint = timed(loop.save_checkpoint, "excluded")
    return cpu


def run(model_dir: str, out_dir: str, seed: int, steps: int, eval_every: int, s: dict[str, Any],
        algo: str = "grpo", engine: str = "vllm", source: Source | None = None) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    from rlreason.config import register_configs
    from rlreason.trainer import loop
    from rlreason.trainer.loop import train
    from rlreason.validate import validate

    cpu = cpu_clock(loop)

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("config", overrides=overrides(model_dir, seed, steps, eval_every, s, algo, engine, source))
    validate(cfg)
    run_dir = Path(out_dir)
    summary = json.loads(train(cfg, run_dir).read_text())
    phases = summary["phase_seconds"]
    train_s = summary["wall_clock_s"] - phases.get("eval", 0.0) - phases.get("checkpoint", 0.0)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    per_step = [{"step": r["iteration"], **{k: v for k, v in r.items()
                 if k.startswith(("train/", "learner/", "adv/"))}} for r in rows if "train/reward" in r]
    with sqlite3.connect(run_dir / "stats.sqlite") as db:
        drawn: dict[int, list[str]] = {}
        for q, it in db.execute("SELECT DISTINCT question, iteration FROM attempts WHERE phase='train' "
                                "ORDER BY iteration, rowid"):
            drawn.setdefault(it, []).append(q)
    name = f"rlreason-{algo}" + ("" if engine == "vllm" else f"-{engine}")
    return {"framework": name, "algo": algo, "seed": seed,
            "steps": steps, "evals": [{"step": e["iteration"], "accuracy": e["eval/accuracy"]} for e in summary["evals"]],
            "s_per_step": train_s / steps, "cpu_s_per_step": (cpu["loop"] - cpu["excluded"]) / steps,
            "phase_seconds": phases, "per_step": per_step,
            "questions": [drawn[k] for k in sorted(drawn)]}
