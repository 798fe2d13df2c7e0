"""Evaluate a model on a task: `python -m rlreason.eval model=hf model.path=DIR_OR_HUB_ID data=arith`.

The same engine, prompt formatting and grader as training (rlreason.rollout.Roller), so the numbers are
the ones a run's own evals would give. `model.path` may be a model dir or hub id, a run dir (its newest
intact checkpoint) or a checkpoint dir (RUN/checkpoints/iter_N); a sharded (torchrun) checkpoint is
exported to a model dir inside the output dir first and removed after (rlreason/distributed/export.py). Writes
into the output dir
(hydra.run.dir, default outputs/eval/MODEL-DATA-SPLIT):

    metrics.json       every metric, and what was evaluated how
    completions.jsonl  one row per completion: id, problem, response, gold, reward, reason, ...;
                       `python -m rlreason.grade completions.jsonl --task TASK` gives the same verdicts

prints a markdown table, and ends with the path of metrics.json. Config: conf/eval.yaml (`-m` sweeps).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from rlreason.config import ConfigError, grader_task, register_configs
from rlreason.validate import validate_eval

register_configs()


@dataclass
class Target:
    weights: str  # a dir or hub id from_pretrained and the engine open
    tokenizer: str  # where the tokenizer comes from
    run_cfg: Any = None  # the training run's saved config, when evaluating a run or checkpoint dir
    checkpoint: str | None = None
    base: str | None = None  # a sharded checkpoint: the model its run started from (its shards load into it)


def resolve_target(cfg) -> Target:
    """What `model.path` points at: a model, a run dir or a checkpoint dir."""
    from rlreason.distributed.export import is_adapter, is_sharded
    from rlreason.model.load import resolve_model_path
    from rlreason.trainer import checkpoint

    try:
        path = resolve_model_path(cfg.model, os.path.expanduser(cfg.cache_dir))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{e} (set model.path to a model dir, a hub id, a run dir or a checkpoint dir)") from e
    local = Path(path)
    if local.name == "policy" and (local.parent / "trainer_state.pt").is_file():
        local = local.parent  # RUN/checkpoints/iter_N/policy: the checkpoint it belongs to
    if (local / "checkpoints").is_dir():  # a run dir: its newest intact checkpoint
        found = [c for c in reversed(checkpoint.list_checkpoints(local / "checkpoints")) if checkpoint.verify(c) is None]
        if not found:
            raise ConfigError(f"model.path={path}: a run dir with no intact checkpoint in {local / 'checkpoints'}")
        ckpt, run = found[0], local
    elif ((local / "policy" / "config.json").is_file() and (local / "trainer_state.pt").is_file()) or is_sharded(local) \
            or is_adapter(local):
        ckpt, run = local, local.parent.parent
    else:
        return Target(path, path)
    problem = checkpoint.verify(ckpt)
    if problem:
        raise ConfigError(f"checkpoint {ckpt} is damaged ({problem}); evaluate another one")
    saved = run / ".hydra" / "config.yaml"
    run_cfg = OmegaConf.load(saved) if saved.is_file() else None
    if is_sharded(ckpt) or is_adapter(ckpt):  # no model in policy/: evaluate_model exports it into the output dir first
        from rlreason.distributed.export import base_model

        base, tok = base_model(ckpt, os.path.expanduser(cfg.cache_dir))
        return Target("", cfg.model.tokenizer or tok, run_cfg, str(ckpt), base)
    if run_cfg is not None:  # the run's own tokenizer (a checkpoint holds only weights)
        tok = run_cfg.model.tokenizer or resolve_model_path(run_cfg.model, os.path.expanduser(cfg.cache_dir))
    elif cfg.model.tokenizer:
        tok = cfg.model.tokenizer
    else:
        raise ConfigError(f"checkpoint {ckpt} holds no tokenizer and {saved} is missing: set model.tokenizer=...")
    return Target(str(ckpt / "policy"), tok, run_cfg, str(ckpt))


def evaluate_model(cfg, out_dir: Path, engine=None) -> Path:
    """Evaluate as `cfg` (an EvalConfig node) says, write the files into `out_dir`, print the table;
    returns the path of metrics.json. `engine`: an already running engine (left open) into which the
    model's weights are synced; else one is started on them."""
    import shutil

    from rlreason.distributed.export import export, is_adapter

    target = resolve_target(cfg)
    check_prompt_format(cfg, target)
    out_dir.mkdir(parents=True, exist_ok=True)
    if target.base is None:
        return _evaluate(cfg, out_dir, target, engine)
    target.weights = str(out_dir / f".export-{Path(target.checkpoint).name}")
    shutil.rmtree(target.weights, ignore_errors=True)  # left by an eval that was killed
    print(f"rlreason: {target.checkpoint} is a {'LoRA' if is_adapter(Path(target.checkpoint)) else 'sharded'} checkpoint: exporting it to {target.weights} for this eval "
          f"(removed after; python -m rlreason.distributed.export {target.checkpoint} OUT keeps one)")
    try:
        export(Path(target.checkpoint), Path(target.weights), base=target.base, tokenizer=target.tokenizer,
               with_critic=False)
        return _evaluate(cfg, out_dir, target, engine)
    finally:
        shutil.rmtree(target.weights, ignore_errors=True)


def check_prompt_format(cfg, target: Target) -> None:
    """A run's checkpoint is evaluated on the prompt it was trained on: with its chat template or
    without (model=tiny_chat turns it on; `model=hf model.path=RUN` alone would not)."""
    if target.run_cfg is None:
        return
    trained = bool(OmegaConf.select(target.run_cfg, "data.use_chat_template", default=False))
    if trained != bool(cfg.data.use_chat_template):
        raise ConfigError(f"{target.checkpoint} was trained with data.use_chat_template={str(trained).lower()}: "
                          f"evaluate it on the same prompt, data.use_chat_template={str(trained).lower()}")


def _evaluate(cfg, out_dir: Path, target: Target, engine) -> Path:
    import torch
    from tqdm import tqdm

    from rlreason.data import load_split, prompt_template
    from rlreason.data.fit import check_prompts, measure_prompts, tiny_hint
    from rlreason.engine import make_engine
    from rlreason.envs.setup import make_env
    from rlreason.model.heldout import held_out_filter
    from rlreason.reward import make_grader
    from rlreason.reward.meter import GradeMeter
    from rlreason.rollout import Roller
    from rlreason.seeds import SeedStream
    from rlreason.trainer.build import context_length, load_tokenizer, resolve_device
    from rlreason.trainer.evaluate import markdown, summarize

    e, task = cfg.eval, grader_task(cfg)
    # A run's checkpoint started from its run's model: that model's SFT questions are not held out.
    base = target.run_cfg.model if target.run_cfg is not None else cfg.model
    questions = load_split(cfg.data, e.split, needs_answer=not (cfg.reward.fn or cfg.env.cls),
                           held_out=held_out_filter(base, cfg.data.name))[: e.max_questions]
    tokenizer = load_tokenizer(cfg, target.weights, target.tokenizer)
    context = context_length(cfg, target.weights)
    # Every prompt fits with the response's tokens to spare, and the tokenizer can read it: checked before
    # the engine starts (rlreason/data/fit.py).
    stats = measure_prompts(e.split, questions, tokenizer, prompt_template(cfg.data), cfg.data.use_chat_template)
    wanted, budget = response_budget(cfg, target)
    check_prompts([stats], context=context, max_new_tokens=wanted or 1, budget=budget, lower="eval.max_new_tokens",
                  hint=tiny_hint(cfg.model.name, cfg.data.name, context))
    device, dtype = resolve_device(cfg)
    torch.manual_seed(cfg.seed)
    grader = GradeMeter(make_grader(cfg.reward, task))  # timeouts and errors counted, the first shown
    roller = Roller(None, tokenizer, grader, task=task, template=prompt_template(cfg.data),
                    use_chat_template=cfg.data.use_chat_template, temperature=e.temperature, top_p=e.top_p,
                    max_new_tokens=max_new_tokens(cfg, target, stats.longest, context))
    own_engine = engine is None
    start = time.perf_counter()
    try:
        if own_engine:
            engine = make_engine(cfg.engine, target.weights, tokenizer, dtype=str(dtype).removeprefix("torch."),
                                 seed=cfg.seed, max_model_len=context)
        else:
            engine.sync_weights(load_weights(target.weights), engine.version + 1)
        roller.engine, roller.version = engine, engine.version
        roller.env = make_env(cfg, engine, tokenizer, budget=roller.max_new_tokens, stop=())  # env.cls: played
        # The eval phases' seed blocks of "iteration 0" (rlreason/seeds.py): consecutive takes are
        # contiguous, so request j of the split gets the same seed however the split is chunked.
        roller.seeds = SeedStream(cfg.seed, 0)
        greedy, sampled = ([] if e.greedy else None), ([] if e.n else None)
        bar = tqdm(total=len(questions), desc="eval", unit="q", disable=not e.progress, dynamic_ncols=True)
        for i in range(0, len(questions), e.batch_questions):
            chunk = questions[i : i + e.batch_questions]
            if greedy is not None:
                greedy += roller(chunk, 1, temperature=0.0, phase="eval_greedy")
            if sampled is not None:
                sampled += roller(chunk, e.n, temperature=e.temperature, phase="eval_sampled")
            bar.update(len(chunk))
        bar.close()
        grader.check("this eval")  # every response failed to grade: the reward is broken, say so
    finally:
        grader.close()
        if roller.env is not None:
            roller.env.close()
        if own_engine and engine is not None:
            engine.close()
    report = {
        "model": cfg.model.path, "weights": target.weights if target.base is None else f"{target.checkpoint}/dcp (exported)", "checkpoint": target.checkpoint,
        "data": cfg.data.name, "split": e.split, "checker": task, "n": e.n, "temperature": e.temperature,
        "top_p": e.top_p, "max_new_tokens": roller.max_new_tokens, "engine": cfg.engine.name, "device": device,
        "seed": cfg.seed, **summarize(questions, greedy, sampled, e.n), **grader.take(),
        "wall_clock_s": round(time.perf_counter() - start, 1),
    }
    write_completions(out_dir / "completions.jsonl", greedy, sampled, with_record=task == "fn")
    path = out_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)
    print(markdown(report, f"{cfg.model.name} on {cfg.data.name} ({e.split})"))
    how = f"--reward.fn {cfg.reward.fn}" if task == "fn" else f"--task {task}"
    regrade = "" if task == "env" else f" (regrade: python -m rlreason.grade FILE {how})"  # an env's episodes: no
    print(f"\ncompletions: {out_dir / 'completions.jsonl'}{regrade}")
    print(path)
    return path


def max_new_tokens(cfg, target: Target, longest_prompt: int, context: int) -> int:
    """eval.max_new_tokens, else the run's own rollout length, else what the context leaves."""
    room = context - longest_prompt
    if room < 1:
        raise ConfigError(f"the longest prompt has {longest_prompt} tokens and the context {context}: no room "
                          "for a response; raise model.max_model_len or use shorter prompts")
    wanted, _ = response_budget(cfg, target)
    if wanted is None:
        return room
    if wanted > room:
        raise ConfigError(f"eval.max_new_tokens={wanted} and the longest prompt ({longest_prompt} tokens) exceed "
                          f"the context of {context} tokens (model.max_model_len): lower eval.max_new_tokens")
    return wanted


def response_budget(cfg, target: Target) -> tuple[int | None, str]:
    """The response length asked for (eval.max_new_tokens, else the run's own; None: what the context
    leaves) and the setting that asks it, for messages."""
    if cfg.eval.max_new_tokens is not None:
        return cfg.eval.max_new_tokens, f"eval.max_new_tokens={cfg.eval.max_new_tokens} for the response"
    if target.run_cfg is not None and (run := OmegaConf.select(target.run_cfg, "rollout.max_new_tokens")) is not None:
        return run, f"the run's rollout.max_new_tokens={run} for the response"
    return None, "at least 1 response token (eval.max_new_tokens=null)"


def load_weights(model_dir: str):
    """(name, tensor) pairs of a local model dir's safetensors files, for syncing into a running engine."""
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{model_dir}: no *.safetensors weights to load into the running engine")
    return [item for f in files for item in load_file(str(f)).items()]


def write_completions(path: Path, greedy, sampled, with_record: bool = False) -> None:
    """Every completion as a JSONL row, greedy first; `sample` is "greedy" or the sample's index.
    `with_record`: each row also carries its question's record (what a reward function regrades from)."""
    with path.open("w", encoding="utf-8") as f:
        for name, groups in (("greedy", greedy), ("sampled", sampled)):
            for group in groups or []:
                for k, ep in enumerate(group):
                    f.write(json.dumps({
                        "id": ep.question.id, "sample": "greedy" if name == "greedy" else k,
                        "problem": ep.question.problem, "response": ep.text, "gold": ep.question.answer,
                        "reward": ep.reward, "reason": ep.reason, "extracted": ep.extracted,
                        "truncated": ep.finish_reason == "length", "tokens": len(ep.response_ids),
                    } | ({"components": ep.components, "record": ep.question.row()} if with_record else {})) + "\n")


@hydra.main(version_base=None, config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from rlreason.data import DataError
    from rlreason.reward import RewardFnError
    from rlreason.reward.meter import RewardFailed
    from rlreason.run import fail

    try:
        validate_eval(cfg)
        evaluate_model(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ConfigError, DataError, RewardFnError, RewardFailed) as e:
        fail(str(e))


if __name__ == "__main__":
    from rlreason.run import preflight

    preflight(sys.argv[1:], config_name="eval", check=validate_eval)
    main()
