"""Child of test_tiny_chat.py: model=tiny_chat end to end on its own vLLM engine (the session's shared
engine holds the Llama-architecture tiny model, and a second in-process engine cannot start there).

    python tests/model/tiny_chat_child.py OUT_DIR

One engine on the committed checkpoint, resolved and loaded as `python -m rlreason.run model=tiny_chat`
does (model=hf's code path: resolve_model_path, load_tokenizer, context_length). Writes OUT_DIR/result.json
with what the parent asserts:

  prompts   the Roller's prompt ids against apply_chat_template(..., add_generation_prompt=True)
  stop      completions against <|im_end|>: where generation stopped, and the learner's log-prob of it
  states    VinePPO's states on the sampled responses (token ends, their decoded text, the step text)
  run       two VinePPO iterations through rlreason's loop (trainer.loop.train) on this engine
  eval      `rlreason.eval model=hf model.path=RUN` on this engine, then `rlreason.grade` on its file
  reload    the run's last checkpoint (an HF dir) through transformers and through vLLM: greedy tokens
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
N_QUESTIONS, N_SAMPLES = 12, 4


def compose(config: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from rlreason.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return hydra_compose(config, overrides=overrides)


def probe(run, tokenizer, engine) -> dict:
    """Prompts, stop token and VinePPO states on the committed weights, through the run's own Roller."""
    from rlreason.algo.vineppo import assign_vineppo_advantages, plan_steps
    from rlreason.segment import segment

    questions = run.eval_questions[:N_QUESTIONS]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    chat = [tokenizer.apply_chat_template([{"role": "user", "content": q.problem}], tokenize=True,
                                          add_generation_prompt=True, return_dict=False) for q in questions]
    prompts = {"roller": [run.roller.prompt_ids(q) for q in questions], "chat_template": chat,
               "text": tokenizer.decode(run.roller.prompt_ids(questions[0]))}

    episodes = [ep for group in run.roller(questions, N_SAMPLES, temperature=1.0) for ep in group]
    learner_logp = run.learner.logprobs(episodes)
    stop = {"im_end": im_end, "eos": tokenizer.eos_token_id, "episodes": [
        {"finish": ep.finish_reason, "ids": ep.response_ids, "text": ep.text,
         "decoded": tokenizer.decode(ep.response_ids, skip_special_tokens=True),
         "engine_last_logp": ep.logprobs[-1], "learner_last_logp": lp[-1], "reward": ep.reward}
        for ep, lp in zip(episodes, learner_logp)]}

    states = []
    for ep in episodes:
        plan = plan_steps(ep, tokenizer, "arith", run.cfg.data.steps)
        spans = segment(ep.text, "arith", run.cfg.data.steps)
        states.append({"ends": plan.ends, "char_starts": plan.char_starts, "step_ends": [b for _, b in spans],
                       "decoded": [tokenizer.decode(ep.response_ids[:k], skip_special_tokens=True) for k in plan.ends],
                       "tokens": [tokenizer.decode([t]) for t in ep.response_ids]})
    a = run.cfg.algo
    metrics = assign_vineppo_advantages(
        episodes, engine, run.grader, tokenizer, task="arith", k=2, temperature=1.0, top_p=1.0,
        max_new_tokens=run.cfg.rollout.max_new_tokens, steps=run.cfg.data.steps, seeds=None,
        version=run.roller.version, mc=a.mc)
    return {"prompts": prompts, "stop": stop, "states": states, "mc_states": metrics["mc/states"],
            "advantages": [len(ep.advantages) == len(ep.response_ids) for ep in episodes]}


def main(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from rlreason.engine import make_engine
    from rlreason.engine.base import SamplingParams
    from rlreason.eval import evaluate_model
    from rlreason.model.load import resolve_model_path
    from rlreason.trainer.build import build, context_length, load_tokenizer
    from rlreason.trainer.loop import train
    from rlreason.validate import validate, validate_eval
    from tests.trainer.conftest import SMALL

    torch.set_num_threads(1)
    cfg = compose("config", [*SMALL, "model=tiny_chat", "trainer.iterations=2", f"cache_dir={out / 'cache'}"])
    validate(cfg)
    model_path = resolve_model_path(cfg.model, out / "cache")
    tokenizer = load_tokenizer(cfg, model_path)
    engine = make_engine(cfg.engine, model_path, tokenizer, dtype="float32", seed=0,
                         max_model_len=context_length(cfg, model_path))
    result: dict = {"model_path": model_path, "use_chat_template": cfg.data.use_chat_template}

    run = build(cfg, out / "probe", engine)
    try:
        result |= probe(run, tokenizer, engine)
    finally:
        run.close(close_engine=False)

    run_dir = out / "run"
    result["run"] = json.loads(train(cfg, run_dir, engine=engine).read_text())
    result["run_metrics"] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

    # A run made outside `python -m rlreason.run` has no saved config to name its tokenizer: model.tokenizer does
    ecfg = compose("eval", ["model=hf", f"model.path={run_dir}", f"model.tokenizer={model_path}", "data=arith",
                            "data.use_chat_template=true",
                            "eval.max_questions=16", "eval.n=2", "eval.progress=false"])
    validate_eval(ecfg)
    metrics = json.loads(evaluate_model(ecfg, out / "eval", engine=engine).read_text())  # syncs the checkpoint in
    completions = out / "eval" / "completions.jsonl"
    graded = subprocess.run([sys.executable, "-m", "rlreason.grade", str(completions), "--task", "arith", "--workers", "1"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    result["eval"] = {"metrics": metrics, "rows": [json.loads(line) for line in completions.read_text().splitlines()],
                      "grade_rc": graded.returncode, "grade_stderr": graded.stderr[-2000:],
                      "verdicts": [json.loads(line) for line in graded.stdout.splitlines()]}

    # The checkpoint's policy/ is an HF model dir: transformers loads it, and vLLM holds its weights now.
    policy = Path(metrics["weights"])
    questions = run.eval_questions[:8]
    prompts = [run.roller.prompt_ids(q) for q in questions]
    outs = engine.generate(prompts, SamplingParams(temperature=0.0, max_tokens=cfg.rollout.max_new_tokens),
                           version=engine.version)
    model = AutoModelForCausalLM.from_pretrained(policy)
    hf = []
    for ids in prompts:
        gen = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=cfg.rollout.max_new_tokens,
                             attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        hf.append(gen[0, len(ids):].tolist())
    result["reload"] = {"policy": str(policy), "files": sorted(p.name for p in policy.iterdir()),
                        "vllm": [c.token_ids for (c,) in outs], "hf": hf,
                        "tied": bool(model.config.tie_word_embeddings)}
    engine.close()
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(Path(sys.argv[1]))
