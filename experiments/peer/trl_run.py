"""One TRL run (GRPOTrainer or RLOOTrainer) on the comparison's questions -> a run record (dict, JSON-ready)."""

from __future__ import annotations

import time
from typing import Any

import torch
from peer.evaluation import GreedyEval
from peer.source import Source, prompt
from transformers import AutoTokenizer, TrainerCallback

ALGOS = ("grpo", "rloo")


def trl_config(algo: str, out_dir: str, seed: int, steps: int, s: dict[str, Any]):
    """TRL's GRPOConfig or RLOOConfig with every setting the comparison depends on spelled out
    (experiments/peer/README.md has the table, and where TRL's defaults were changed)."""
    from trl import GRPOConfig, RLOOConfig

    common = dict(
        output_dir=out_dir, seed=seed, max_steps=steps,
        # one generation batch = one optimizer step: 16 prompts x 8 completions, no accumulation
        per_device_train_batch_size=s["questions_per_step"] * s["samples_per_question"],
        gradient_accumulation_steps=1, num_generations=s["samples_per_question"], num_iterations=1,
        max_completion_length=s["max_new_tokens"], temperature=s["temperature"], top_p=1.0, top_k=0,
        beta=0.0, epsilon=s["clip_eps"], mask_truncated_completions=False, shuffle_dataset=True,
        learning_rate=s["lr"], lr_scheduler_type=s["schedule"], warmup_steps=0,
        optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.0,
        max_grad_norm=s["grad_clip"],
        # CPU, fp32 like rlreason's learner; no checkpointing of activations or of the run
        use_cpu=True, bf16=False, gradient_checkpointing=False, model_init_kwargs={"dtype": torch.float32},
        save_strategy="no", report_to="none", logging_steps=1, disable_tqdm=True, log_completions=False,
    )
    if algo == "grpo":
        return GRPOConfig(**common, loss_type="dapo", scale_rewards="group")
    if algo == "rloo":
        # RLOO's defaults already match rlreason's algo=rloo here: no advantage normalisation, no reward clip
        return RLOOConfig(**common, normalize_advantages=False, reward_clip_range=None)
    raise ValueError(f"algo {algo!r}: TRL has {', '.join(ALGOS)} here")


class Recorder(TrainerCallback):
    """Greedy eval every `eval_every` steps (and at 0 and the end), TRL's per-step logs, and the clock."""

    def __init__(self, evaluate: GreedyEval, eval_every: int, steps: int):
        self.evaluate, self.eval_every, self.steps = evaluate, eval_every, steps
        self.evals: list[dict[str, float]] = []
        self.logs: list[dict[str, float]] = []
        self.t_begin = self.t_end = self.eval_s = 0.0  # eval_s: eval seconds inside the clock
        self.cpu_begin = self.cpu_end = self.eval_cpu = 0.0  # the same in process CPU seconds

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.evals.append({"step": 0, "accuracy": self.evaluate(model, 0)})
        self.t_begin, self.cpu_begin = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, model=None, **kw):
        step = state.global_step
        if step % self.eval_every == 0 or step == self.steps:
            t0, c0 = time.perf_counter(), time.process_time()
            self.evals.append({"step": step, "accuracy": self.evaluate(model, step)})
            self.eval_s += time.perf_counter() - t0
            self.eval_cpu += time.process_time() - c0
        self.t_end, self.cpu_end = time.perf_counter(), time.process_time()

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "reward" in logs:
            self.logs.append({"step": state.global_step, **{k: float(v) for k, v in logs.items()
                                                           if isinstance(v, int | float)}})


def run(algo: str, source: Source, model_dir: str, out_dir: str, seed: int, steps: int, eval_every: int,
        s: dict[str, Any]) -> dict[str, Any]:
    from datasets import Dataset
    from trl import GRPOTrainer, RLOOTrainer

    from rlreason.reward import Grader

    train, test, template = source.load()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = Dataset.from_dict({"prompt": [prompt(q, template, source.chat) for q in train], "answer": [q.answer for q in train],
                              "qid": [q.id for q in train]})
    grader = Grader(source.grader_task())
    drawn: list[list[str]] = []  # question ids per step, in order

    def reward(completions, completion_ids, answer, qid, **kw) -> list[float]:
        # Same verdicts as rlreason: a completion cut at max_new_tokens (no EOS) is "truncated", reward 0.
        cut = [not ids or ids[-1] != tokenizer.eos_token_id for ids in completion_ids]
        drawn.append(list(dict.fromkeys(qid)))
        return [v.reward for v in grader.grade(completions, answer, cut)]

    evaluate = GreedyEval(model_dir, tokenizer, test[: s["eval_questions"]], s["max_new_tokens"],
                          source.grader_task(), template, source.chat)
    recorder = Recorder(evaluate, eval_every, steps)
    trainer_cls = GRPOTrainer if algo == "grpo" else RLOOTrainer
    trainer = trainer_cls(model=model_dir, reward_funcs=reward, args=trl_config(algo, out_dir, seed, steps, s),
                          train_dataset=data, processing_class=tokenizer, callbacks=[recorder])
    try:
        trainer.train()
    finally:
        grader.close()
        evaluate.close()
    train_s = recorder.t_end - recorder.t_begin - recorder.eval_s
    return {"framework": f"trl-{algo}", "algo": algo, "seed": seed, "steps": steps, "evals": recorder.evals,
            "s_per_step": train_s / steps,
            "cpu_s_per_step": (recorder.cpu_end - recorder.cpu_begin - recorder.eval_cpu) / steps,
            "eval_seconds": evaluate.seconds, "per_step": recorder.logs, "questions": drawn}
