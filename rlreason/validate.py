"""Checks a composed config before anything is loaded: unknown keys (with "did you mean"), choices, and
the cross-field rules that a type cannot express. Every problem is listed at once, as one ConfigError.

The schema itself (the dataclasses Hydra validates types against) is rlreason/config/.
"""

from __future__ import annotations

import difflib
import os
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlreason.config import Config, ConfigError, EvalConfig
from rlreason.data.pairing import pairing_problems
from rlreason.data.reasoning_gym import problems as reasoning_gym_problems
from rlreason.envs.setup import env_problems
from rlreason.learner.objective import objective_problems
from rlreason.reward.overlong import overlong_problems
from rlreason.seeds import MAX_ITERATION, MAX_RUN_SEED  # the sampling-seed layout's limits

CHOICES = {
    "algo.name": ("vineppo", "ppo", "grpo", "rloo"),
    "data.name": ("arith", "countdown", "guess", "gsm8k", "math", "jsonl", "reasoning_gym"),
    "data.source": ("local", "hub", "generated"),
    "data.steps.rule": ("auto", "vineppo", "lines", "sentences"),
    "trainer.eval_headline": ("greedy", "mean"),
    "engine.name": ("vllm", "hf"),
    "curriculum.name": ("uniform", "learnability", "sfl", "learnability_history", "skip_zero_variance",
                        "filter_groups"),
    "logger.name": ("console", "wandb"),
    "logger.mode": ("auto", "online", "offline", "disabled"),
    "learner.schedule": ("linear", "constant", "cosine"),
    "learner.warmup": ("linear", "log"),
    "algo.kl_reduction": ("sequence_sum", "token_mean"),
    "algo.mc.v0": ("mc", "group"),
    "resume": ("auto", "never", "must"),
    "device": ("auto", "cpu", "cuda"),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "reward.checker": ("auto", "math", "hash", "exact"),
}


def _schema_keys(cls: type, prefix: str = "") -> dict[str, type]:
    """Every dotted key of the schema rooted at dataclass `cls`, with its declared type."""
    out: dict[str, type] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        t = hints[f.name]
        out[prefix + f.name] = t
        if is_dataclass(t):
            out |= _schema_keys(t, f"{prefix}{f.name}.")
    return out


def unknown_keys(cfg: Any, cls: type | None = None, prefix: str = "") -> list[str]:
    """Keys of `cfg` the schema does not have. Hydra's `+key=value` appends to a structured config
    without complaint; an unused key is a typo that would silently change nothing."""
    cls = cls or Config
    names = {f.name for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for key in cfg.keys() if hasattr(cfg, "keys") else []:
        if not prefix and key == "hydra":
            continue
        if key not in names:
            out.append(f"{prefix}{key}")
        elif is_dataclass(hints[key]):
            out += unknown_keys(cfg[key], hints[key], f"{prefix}{key}.")
    return out


def suggest(key: str, cls: type | None = None) -> str:
    """' (did you mean X?)' for a mistyped dotted key, or ''."""
    close = difflib.get_close_matches(key, list(_schema_keys(cls or Config)), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _getter(cfg: Any):
    def get(path: str) -> Any:
        node = cfg
        for part in path.split("."):
            node = getattr(node, part)
        return node

    return get


def _schema_problems(cfg: Any, cls: type) -> list[str]:
    """Unknown keys and unset mandatory values (`model=hf` without `model.path`), of a DictConfig."""
    if not hasattr(cfg, "keys"):  # a dataclass has no stray keys by construction
        return []
    problems = [f"unknown config key {key}{suggest(key, cls)}: it is not in the schema (rlreason/config/), "
                "so it would change nothing" for key in unknown_keys(cfg, cls)]
    for key in _missing(cfg):
        hint = " (model=hf model.path=HUB_ID_OR_DIR)" if key == "model.path" else ""
        problems.append(f"{key} must be set{hint}")
    return problems


def _missing(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys still at `???`, outside hydra's node; interpolations are not resolved here."""
    out = []
    for key in node.keys():
        if (not prefix and key == "hydra") or OmegaConf.is_interpolation(node, key):
            continue
        if OmegaConf.is_missing(node, key):
            out.append(f"{prefix}{key}")
        elif OmegaConf.is_config(node[key]) and hasattr(node[key], "keys"):
            out += _missing(node[key], f"{prefix}{key}.")
    return out


def _raise(problems: list[str]) -> None:
    if len(problems) == 1:  # one line, as every other input error
        raise ConfigError(f"invalid config: {problems[0]}")
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def _mc_problems(cfg: Any) -> list[str]:
    """VinePPO's MC options (algo.mc, rlreason/algo/mc.py)."""
    mc, k, out = cfg.algo.mc, cfg.algo.mc_rollouts, []
    if mc.max_rollouts is not None and mc.max_rollouts < k:
        out.append(f"algo.mc.max_rollouts={mc.max_rollouts} must be >= algo.mc_rollouts={k} (the first round), "
                   "or null for a fixed K")
    if mc.new_rollouts < 1 or mc.ci_length < 0:
        out.append(f"algo.mc.new_rollouts={mc.new_rollouts} must be >= 1 and algo.mc.ci_length={mc.ci_length} >= 0")
    if mc.v0 == "group" and cfg.rollout.samples_per_question < 2:
        out.append("algo.mc.v0=group takes V(s_0) from the other rollouts of the question: it needs "
                   f"rollout.samples_per_question >= 2 (got {cfg.rollout.samples_per_question})")
    if mc.tree and k < 2:
        out.append(f"algo.mc.tree=true gives each continuation the mean of its siblings as baseline: it needs "
                   f"algo.mc_rollouts >= 2 (got {k})")
    if mc.tree_max < 1:
        out.append(f"algo.mc.tree_max={mc.tree_max} must be >= 1")
    return out


def validate(cfg: Any) -> None:
    """Cross-field checks that types cannot express. Raises ConfigError listing every problem."""
    _raise(_schema_problems(cfg, Config))  # the checks below read known, set keys only: typos first
    get = _getter(cfg)
    problems = _choice_problems(get, CHOICES)

    def positive(path: str, minimum: float = 1) -> None:
        if get(path) is None or get(path) < minimum:
            problems.append(f"{path}={get(path)} must be >= {minimum}")

    for path in ("rollout.samples_per_question", "rollout.max_new_tokens", "algo.mc_rollouts",
                 "learner.epochs", "learner.minibatch_size", "learner.micro_batch_size",
                 "trainer.questions_per_iteration", "trainer.eval_samples", "trainer.checkpoint_every",
                 "trainer.eval_every", "curriculum.pool_factor", "curriculum.n_select", "learner.max_bad_updates"):
        positive(path)
    positive("trainer.iterations", 0)
    positive("trainer.stop_all_truncated", 0)
    if cfg.trainer.keep_checkpoints is not None:
        positive("trainer.keep_checkpoints")
    if not 0 <= cfg.seed <= MAX_RUN_SEED:
        problems.append(f"seed={cfg.seed} must be in [0, {MAX_RUN_SEED}] (rlreason/seeds.py packs it into each sampling seed)")
    if cfg.trainer.iterations > MAX_ITERATION:
        problems.append(f"trainer.iterations={cfg.trainer.iterations} is past the {MAX_ITERATION} iterations the "
                        "sampling-seed layout holds (rlreason/seeds.py)")
    if not 0 < cfg.rollout.temperature:
        problems.append(f"rollout.temperature={cfg.rollout.temperature} must be > 0 (PPO ratios need a sampling distribution)")
    if not 0 < cfg.rollout.top_p <= 1:
        problems.append(f"rollout.top_p={cfg.rollout.top_p} must be in (0, 1]")
    if get("trainer.eval_max_questions") is not None and get("trainer.eval_max_questions") < 1:
        problems.append(f"trainer.eval_max_questions={get('trainer.eval_max_questions')} must be >= 1, or null for all")
    if not cfg.learner.grad_clip > 0:
        problems.append(f"learner.grad_clip={cfg.learner.grad_clip} must be > 0")
    if cfg.model.max_model_len is not None and cfg.rollout.max_new_tokens >= cfg.model.max_model_len:
        problems.append(f"rollout.max_new_tokens={cfg.rollout.max_new_tokens} leaves no room for the prompt in "
                        f"model.max_model_len={cfg.model.max_model_len}; lower it or raise model.max_model_len")
    if cfg.learner.lr <= 0:
        problems.append(f"learner.lr={cfg.learner.lr} must be > 0")
    if not 0 <= cfg.learner.warmup_ratio < 1:
        problems.append(f"learner.warmup_ratio={cfg.learner.warmup_ratio} must be in [0, 1)")
    if cfg.learner.warmup == "log" and cfg.learner.schedule == "cosine":
        problems.append("learner.warmup=log decays linearly (schedule=linear, DeepSpeed's WarmupDecayLR) or not at "
                        "all (schedule=constant, WarmupLR); cosine needs learner.warmup=linear")
    if cfg.algo.kl_coef < 0:
        problems.append(f"algo.kl_coef={cfg.algo.kl_coef} must be >= 0 (0 disables the KL term)")
    if cfg.trainer.async_level not in (0, 1):
        problems.append(f"trainer.async_level={cfg.trainer.async_level} must be 0 (synchronous) or 1 (one step "
                        "off); deeper staleness is not implemented")
    for path in ("algo.ratio_threshold", "algo.tis_cap"):
        if get(path) is not None and not get(path) > 0:
            problems.append(f"{path}={get(path)} must be > 0, or null for off")
    if not cfg.algo.vf_coef > 0:
        problems.append(f"algo.vf_coef={cfg.algo.vf_coef} must be > 0")
    if not 0 < cfg.algo.clip_eps < 1:
        problems.append(f"algo.clip_eps={cfg.algo.clip_eps} must be in (0, 1)")
    problems += objective_problems(cfg.algo) + overlong_problems(cfg.reward, cfg.rollout.max_new_tokens)
    problems += _mc_problems(cfg)
    steps = cfg.data.steps
    if steps.max_value_steps is not None and steps.max_value_steps < 0:
        problems.append(f"data.steps.max_value_steps={steps.max_value_steps} must be >= 0 or null (no cap)")
    if steps.min_chars < 0 or steps.max_chars < 1:
        problems.append(f"data.steps.min_chars={steps.min_chars} must be >= 0 and data.steps.max_chars="
                        f"{steps.max_chars} >= 1")
    if cfg.rollout.max_gold_cut is not None and not 0 <= cfg.rollout.max_gold_cut < 1:
        problems.append(f"rollout.max_gold_cut={cfg.rollout.max_gold_cut} must be in [0, 1), or null for no check")
    if any(not s for s in cfg.rollout.stop):
        problems.append("rollout.stop has an empty string: it would end every generation at once")
    if cfg.trainer.eval_top_p is not None and not 0 < cfg.trainer.eval_top_p <= 1:
        problems.append(f"trainer.eval_top_p={cfg.trainer.eval_top_p} must be in (0, 1], or null for rollout.top_p")

    episodes = cfg.trainer.questions_per_iteration * cfg.rollout.samples_per_question
    mb, micro = cfg.learner.minibatch_size, cfg.learner.micro_batch_size
    if mb > 0 and micro > 0:
        if episodes % mb:
            problems.append(
                f"learner.minibatch_size={mb} does not divide the {episodes} episodes per iteration "
                f"(trainer.questions_per_iteration={cfg.trainer.questions_per_iteration} x "
                f"rollout.samples_per_question={cfg.rollout.samples_per_question})")
        if mb % micro:
            problems.append(f"learner.micro_batch_size={micro} does not divide learner.minibatch_size={mb}")
    if cfg.algo.name in ("grpo", "rloo") and cfg.rollout.samples_per_question < 2:
        problems.append(f"algo={cfg.algo.name} needs rollout.samples_per_question >= 2 for a group baseline")
    if cfg.curriculum.name in ("learnability", "sfl") and cfg.curriculum.n_select < 2:
        problems.append("curriculum.n_select must be >= 2 to estimate p(1-p)")
    if cfg.curriculum.name == "sfl":
        for path in ("curriculum.refresh_every", "curriculum.n_candidates", "curriculum.buffer_size"):
            positive(path)
        if not 0 <= cfg.curriculum.buffer_frac <= 1:
            problems.append(f"curriculum.buffer_frac={cfg.curriculum.buffer_frac} must be in [0, 1]")
        if cfg.curriculum.buffer_size > cfg.curriculum.n_candidates:
            problems.append(f"curriculum.buffer_size={cfg.curriculum.buffer_size} must be <= curriculum.n_candidates="
                            f"{cfg.curriculum.n_candidates} (the buffer is the best of the candidates)")
    if cfg.curriculum.window < 1:
        problems.append(f"curriculum.window={cfg.curriculum.window} must be >= 1")
    if cfg.curriculum.max_refill_rounds < 0:
        problems.append(f"curriculum.max_refill_rounds={cfg.curriculum.max_refill_rounds} must be >= 0")
    if cfg.curriculum.cooldown < 0:
        problems.append(f"curriculum.cooldown={cfg.curriculum.cooldown} must be >= 0 (0: off)")
    if not 0 <= cfg.curriculum.explore_frac <= 1:
        problems.append(f"curriculum.explore_frac={cfg.curriculum.explore_frac} must be in [0, 1]")
    if not 0 <= cfg.curriculum.skip_prob <= 1:
        problems.append(f"curriculum.skip_prob={cfg.curriculum.skip_prob} must be in [0, 1]")
    if not 0 < cfg.curriculum.decay <= 1:
        problems.append(f"curriculum.decay={cfg.curriculum.decay} must be in (0, 1]")
    problems += _shared_problems(cfg)
    from rlreason.engine import devices  # engine.devices, engine.weight_transfer
    from rlreason.learner import lora, packing

    node = devices.node_layout(os.environ)
    problems += lora.problems(cfg.learner.lora) + lora.sync_problems(cfg, node["world"])
    problems += packing.problems(cfg.learner, cfg.rollout.max_new_tokens)
    problems += tensor_parallel_problems(cfg.engine, node["world"], node["local_world"], cfg.trainer.async_level)
    problems += devices.problems(cfg.engine, world=node["world"], local_world=node["local_world"],
                                 gpus=0 if cfg.device == "cpu" else devices.gpu_count())
    _raise(problems)


def tensor_parallel_problems(engine: Any, world: int, local_world: int, async_level: int = 0) -> list[str]:
    """Under torchrun, engine.tensor_parallel_size=T makes each T consecutive ranks one vLLM engine
    (rlreason/distributed/engine.py). A group must not straddle nodes (torchrun numbers a node's ranks
    consecutively, so T must divide --nproc-per-node, and with it the world size).

    In one process T > 1 is refused for training (rlreason.eval allows it): the learner keeps the whole
    model on one GPU at 8x the engine's bytes per parameter, so a model whose engine needs T GPUs cannot
    train there, and every weight sync would go through a file to vLLM's own worker processes.

    Under torchrun T > 1 is refused with trainer.async_level=1: vLLM's tensor-parallel collectives would
    run on the producer's thread beside FSDP's on the loop's (docs/async.md)."""
    tp = engine.tensor_parallel_size
    if tp < 1:
        return [f"engine.tensor_parallel_size={tp} must be >= 1"]
    if tp == 1:
        return []
    if engine.name != "vllm":
        return [f"engine.tensor_parallel_size={tp} needs engine=vllm (engine=hf runs one model per rank)"]
    if world <= 1:
        return [f"engine.tensor_parallel_size={tp} needs torchrun: start `torchrun --nproc-per-node={tp} -m "
                f"rlreason.run ...` (or a multiple of {tp}), so that each {tp} ranks form one engine and the "
                f"learner is sharded over all of them; in one process the learner would hold the whole model "
                f"on one GPU, and every weight sync would go through a file to vLLM's own worker processes"]
    if local_world % tp or world % tp:
        return [f"engine.tensor_parallel_size={tp} must divide the processes per node ({local_world}, "
                f"torchrun --nproc-per-node) and the world size ({world}): each {tp} consecutive ranks on one "
                f"node form one tensor-parallel engine"]
    if async_level:
        return [f"engine.tensor_parallel_size={tp} with trainer.async_level={async_level} under torchrun: vLLM's "
                f"tensor-parallel collectives would run on the producer's thread beside FSDP's on the learner's, "
                f"and two NCCL communicators used from two threads in a rank-dependent order can deadlock; use "
                f"engine.tensor_parallel_size=1 (one engine per rank) or trainer.async_level=0"]
    return []


def validate_eval(cfg: Any) -> None:
    """validate() for `python -m rlreason.eval`'s config (conf/eval.yaml, EvalConfig)."""
    _raise(_schema_problems(cfg, EvalConfig))
    get = _getter(cfg)
    names = {f.name for f in fields(EvalConfig)}
    problems = _choice_problems(get, {k: v for k, v in CHOICES.items() if k.split(".")[0] in names})
    e = cfg.eval
    if e.n < 0 or (e.n == 0 and not e.greedy):
        problems.append(f"eval.n={e.n} must be >= 1, or 0 with eval.greedy=true (greedy only)")
    if e.n and not e.temperature > 0:
        problems.append(f"eval.temperature={e.temperature} must be > 0 for sampled metrics (eval.greedy is the "
                        "greedy one); or set eval.n=0")
    if not 0 < e.top_p <= 1:
        problems.append(f"eval.top_p={e.top_p} must be in (0, 1]")
    if e.max_new_tokens is not None and e.max_new_tokens < 1:
        problems.append(f"eval.max_new_tokens={e.max_new_tokens} must be >= 1, or null for what the context leaves")
    if e.max_questions is not None and e.max_questions < 1:
        problems.append(f"eval.max_questions={e.max_questions} must be >= 1, or null for all")
    if e.split not in ("train", "test"):
        problems.append(f"eval.split={e.split!r} is not one of train, test")
    if e.batch_questions < 1:
        problems.append(f"eval.batch_questions={e.batch_questions} must be >= 1")
    _raise(problems + _shared_problems(cfg, splits=(e.split,) if e.split in ("train", "test") else ()))


def _choice_problems(get, choices: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    for path, allowed in choices.items():
        if get(path) not in allowed:
            close = difflib.get_close_matches(str(get(path)), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{path}={get(path)!r} is not one of {', '.join(allowed)}{hint}")
    return problems


def _shared_problems(cfg: Any, splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """Checks of the data, model, reward and engine nodes, which training and eval share."""
    problems: list[str] = []
    if not cfg.reward.timeout_s > 0:
        problems.append(f"reward.timeout_s={cfg.reward.timeout_s} must be > 0 (the hard deadline per graded response)")
    if not cfg.reward.startup_timeout_s > 0:
        problems.append(f"reward.startup_timeout_s={cfg.reward.startup_timeout_s} must be > 0 (seconds to import reward.fn)")
    if cfg.reward.workers < 1:
        problems.append(f"reward.workers={cfg.reward.workers} must be >= 1")
    if cfg.model.max_model_len is not None and cfg.model.max_model_len < 2:
        problems.append(f"model.max_model_len={cfg.model.max_model_len} must be >= 2, or null for the model's own")
    if cfg.engine.hf_batch_size < 1 or cfg.engine.max_num_seqs < 1:
        problems.append(f"engine.hf_batch_size={cfg.engine.hf_batch_size} and engine.max_num_seqs="
                        f"{cfg.engine.max_num_seqs} must be >= 1")
    if not 0 < cfg.engine.gpu_memory_utilization <= 1:
        problems.append(f"engine.gpu_memory_utilization={cfg.engine.gpu_memory_utilization} must be in (0, 1]")
    for path in ("data.max_train", "data.max_test"):
        if (value := _getter(cfg)(path)) is not None and value < 1:
            problems.append(f"{path}={value} must be >= 1, or null for all")
    if cfg.model.build and not str(cfg.model.path).startswith("builtin:"):
        problems.append(f"model.path={cfg.model.path} is not the builtin tiny model, but the config still carries "
                        "model=tiny's build: block and name; use model=hf model.path=... for any other model")
    d = cfg.data
    problems += pairing_problems(cfg.model.name, d, OmegaConf.select(cfg, "env.cls"))
    graded = cfg.reward.fn or OmegaConf.select(cfg, "env.cls")  # by a function or an env.cls
    if d.name == "countdown" and not graded:
        problems.append("data=countdown has no gold answer strings: it is graded by a reward function "
                        "(reward.fn=rlreason.reward.countdown:countdown_reward, data=countdown's own)")
    if d.name == "reasoning_gym":
        problems += reasoning_gym_problems(d, cfg.reward.fn)
    if d.source != "generated":
        for split in splits:
            hub = d.hub_test_id or d.hub_id if split == "test" else d.hub_id
            if not getattr(d, f"{split}_path") and not hub:
                problems.append(f"data.{split}_path is unset and there is no hub id to fall back on")
    if d.name == "jsonl" and not (d.fields.problem or d.fields.problem_template):
        problems.append("data=jsonl needs data.fields.problem (the row field holding the problem) or "
                        "data.fields.problem_template (the problem built from the row's fields)")
    if d.name == "jsonl" and not d.fields.answer and not graded:
        problems.append("data=jsonl needs data.fields.answer (the row field holding the gold answer), unless a "
                        "reward function grades from the record: reward.fn=PATH.py:NAME")
    problems += _reward_problems(cfg.reward)
    problems += env_problems(cfg) if getattr(cfg, "env", None) is not None else []  # env.cls, env.max_turns
    if not d.use_chat_template:
        problems += _template_problems(d)
    elif d.user_template is not None and "{problem}" not in d.user_template:
        problems.append("data.user_template must contain '{problem}' (or be null: the question's text as is)")
    return problems


def _reward_problems(r: Any) -> list[str]:
    """reward.*: the numbers, and reward.fn imported and checked here, before any compute."""
    import math

    problems = []
    if not math.isfinite(r.success_threshold):
        problems.append(f"reward.success_threshold={r.success_threshold} must be a finite number")
    if r.batch_size < 1:
        problems.append(f"reward.batch_size={r.batch_size} must be >= 1")
    if bad := [k for k, w in r.weights.items() if not math.isfinite(w)]:
        problems.append(f"reward.weights: {', '.join(bad)} must be finite numbers")
    if not r.fn:
        if r.weights or r.batched:
            problems.append("reward.weights and reward.batched apply to a reward function: set reward.fn=PATH.py:NAME")
        return problems
    from rlreason.reward.function import RewardFnError, check

    try:
        check(r.fn, r.batched, r.startup_timeout_s)
    except RewardFnError as e:
        problems.append(str(e))
    return problems


def _template_problems(d: Any) -> list[str]:
    if d.prompt_template_file:
        path = Path(d.prompt_template_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            return [f"data.prompt_template_file={path} cannot be read ({e})"]
        if "{problem}" not in text:
            return [f"data.prompt_template_file={path} must contain '{{problem}}'"]
    elif d.prompt_template is not None and "{problem}" not in d.prompt_template:
        return ["data.prompt_template must contain '{problem}' (or be null: the question's text as is)"]
    return []
