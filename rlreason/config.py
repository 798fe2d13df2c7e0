"""Typed config schema, registered in Hydra's ConfigStore.

Every YAML file under `conf/` is validated against these dataclasses when Hydra composes the config,
so a wrong type or an unknown key fails before any compute. One dataclass per config group; the group
names mirror the packages (`algo/` -> rlreason.algo, `engine/` -> rlreason.engine, ...).
Cross-field checks that a type cannot express live in `validate()`.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from rlreason.seeds import MAX_ITERATION, MAX_RUN_SEED  # the sampling-seed layout's limits


def _per_task(table: Any, *, _root_: Any) -> Any:
    """`${per_task:{math: 1000, gsm8k: 650}}`: the value for the run's data.name (presets that follow the
    reference's per-task settings, e.g. experiment=paper's iterations)."""
    name = _root_.data.name
    if name not in table:
        raise ConfigError(f"this preset has no value for data={name} (it has {', '.join(table)}): set it explicitly")
    return table[name]


OmegaConf.register_new_resolver("per_task", _per_task, replace=True)


def _world_tag() -> str:
    """`${world_tag:}` in the default run name: "" in one process, "-w8" under torchrun with 8 ranks, so a
    sharded run and a single-process run of the same config keep separate run dirs (a checkpoint
    resumes only at the world size that wrote it)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f"-w{world}" if world > 1 else ""


OmegaConf.register_new_resolver("world_tag", _world_tag, replace=True)


@dataclass
class ArithConfig:
    min_steps: int = 1
    max_steps: int = 8
    modulus: int = 10
    ops: str = "+-*"
    invertible: bool = True  # multipliers coprime to the modulus: a wrong step cannot end right by luck
    n_train: int = 20000
    n_test: int = 500
    seed: int = 0


@dataclass
class StepsConfig:
    """How a response is cut into VinePPO's steps (rlreason/segment.py); conf/data/*.yaml set it per task."""

    rule: str = "auto"  # auto (math: vineppo; gsm8k, arith: lines) | vineppo | lines | sentences
    min_chars: int = 20  # vineppo: a shorter piece not ending a sentence joins the next (reference: 20)
    max_chars: int = 100  # vineppo: a longer piece is halved at , and : to, or in maths at = + (reference: 100)
    answer_prefix: str | None = "\n#### "  # lines: the answer line stays in the last step (reference GSM8K)
    # Values are estimated for the start state and the ends of the first `max_value_steps` steps; later
    # states take the trajectory's own return (reference `max_step_for_value_estimation`: 25 on GSM8K).
    max_value_steps: int | None = None


@dataclass
class FieldsConfig:
    """data=jsonl: which field of a row holds what (null = the row has no such field)."""

    problem: str = "problem"
    answer: str = "answer"  # the gold final answer (a string or a number)
    solution: str | None = None  # a worked solution, kept with the question (not used for grading)
    id: str | None = None  # the row's own id; null = a hash of the problem text
    level: str | None = None  # int or "Level N": per-level eval breakdown
    subject: str | None = None  # per-subject eval breakdown


@dataclass
class DataConfig:
    name: str = MISSING  # arith | gsm8k | math | jsonl
    # Each split is read from its local path when set (JSONL, or parquet for math), else from the hub
    # through `datasets.load_dataset` (train: hub_id/hub_config; test: hub_test_id or hub_id).
    # source=generated is the arith task (no files).
    source: str = "local"
    train_path: str | None = None
    test_path: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_test_id: str | None = None
    hub_test_config: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    max_train: int | None = None  # subset sizes (None = all)
    max_test: int | None = None
    # `{problem}` is replaced by the question's text; null = the text as is. A file, when set, replaces
    # prompt_template with its content byte for byte (a template with newlines, without shell quoting).
    prompt_template: str | None = "[MATH_TASK] Problem:\n{problem}\n\nSolution:"
    prompt_template_file: str | None = None
    use_chat_template: bool = False  # the tokenizer's chat template, the question as the user's message
    steps: StepsConfig = field(default_factory=StepsConfig)
    arith: ArithConfig = field(default_factory=ArithConfig)
    fields: FieldsConfig = field(default_factory=FieldsConfig)


@dataclass
class ModelConfig:
    name: str = MISSING
    # HF hub id or local dir. For `tiny` it is the committed checkpoint; see rlreason.model.tiny.
    path: str = MISSING
    tokenizer: str | None = None  # defaults to `path`
    dtype: str = "auto"  # auto -> bfloat16 on GPU, float32 on CPU
    gradient_checkpointing: bool = False
    max_model_len: int | None = 2048  # None: the model's own (max_position_embeddings in its config.json)
    # Only for the tiny model: how to build it from nothing when the committed one does not match.
    build: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineConfig:
    name: str = MISSING  # vllm | hf
    enable_prefix_caching: bool = True
    block_size: int | None = None  # None -> 32 on CPU (needs a multiple of 32), vLLM default on GPU
    kv_cache_memory_bytes: int | None = None  # CPU KV cache size; None -> 256 MiB on CPU
    gpu_memory_utilization: float = 0.5
    enforce_eager: bool = True
    sleep_mode: bool = False  # GPU: free engine memory during the learner phase
    max_num_seqs: int = 512  # one wave for 64 prompts x 8 samples; measured ~4% faster than 256 on the tiny model
    tensor_parallel_size: int = 1
    hf_batch_size: int = 64  # engine=hf: sequences generated per forward batch


@dataclass
class RolloutConfig:
    samples_per_question: int = 8  # N responses per question (the GRPO/RLOO group size)
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 96
    # Generation also ends at these strings (kept in the text), for rollouts, MC continuations and eval.
    # The reference stops at "\n\n\nProblem:" (a model that starts the next few-shot problem).
    stop: list[str] = field(default_factory=list)


@dataclass
class AlgoConfig:
    name: str = MISSING  # vineppo | ppo | grpo | rloo
    clip_eps: float = 0.2
    kl_coef: float = 1e-4  # k3 KL to the frozen reference; 0 disables (no reference model loaded)
    # sequence_sum: beta x (sum over a response's tokens of k3, each clamped to [0, 10]), mean over
    # sequences, as the reference (algo/vineppo.yaml, algo/ppo.yaml); token_mean: mean over tokens,
    # ~1/length as strong at the same beta (grpo/rloo here).
    kl_reduction: str = "token_mean"
    # Whiten advantages over each minibatch's tokens before the loss (reference: on for vineppo and ppo).
    whiten_advantages: bool = False
    entropy_coef: float = 0.0
    # Skip the policy step of a minibatch whose mean ratio pi/pi_old exceeds this (reference: 10); null: never.
    ratio_threshold: float | None = 10.0
    # Truncated importance sampling: weight each token's policy loss by min(pi_learner_old / pi_engine,
    # tis_cap), correcting for the engine sampling from another distribution (top_p < 1, bf16 kernels).
    # null: off (the reference has no such correction).
    tis_cap: float | None = None
    # vineppo
    mc_rollouts: int = 9  # K continuations per intermediate state
    # ppo (critic + GAE)
    gamma: float = 1.0
    lam: float = 1.0
    value_clip: float = 0.2
    # Scales the critic's loss, 0.5 x mean clipped squared error. The critic has its own optimizer and
    # gradient clip (as the reference), so this only matters against learner.grad_clip; 1.0 = the reference.
    vf_coef: float = 1.0
    critic_lr: float | None = None  # None -> learner.lr (the reference uses one learning rate for both)
    # grpo
    normalize_std: bool = True  # False = Dr.GRPO (no division by the group std)


@dataclass
class LearnerConfig:
    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.03
    schedule: str = "linear"  # linear | constant | cosine
    grad_clip: float = 1.0
    epochs: int = 2  # PPO epochs over each iteration's episodes
    minibatch_size: int = 64  # episodes per optimizer step
    micro_batch_size: int = 16  # episodes per forward/backward (gradient accumulation)
    max_bad_updates: int = 3  # consecutive NaN/inf updates before the run stops


@dataclass
class CurriculumConfig:
    name: str = MISSING  # uniform | learnability | sfl | learnability_history | skip_zero_variance | filter_groups
    pool_factor: int = 4  # learnability: candidate pool = pool_factor x batch
    n_select: int = 8  # learnability, sfl (L): attempts per candidate to estimate p
    bessel: bool = False  # p(1-p) * n/(n-1)
    decay: float = 0.5  # history variants: weight of an attempt = decay ** (age in iterations)
    window: int = 20  # history variants: only the last `window` iterations count
    explore_frac: float = 0.25  # learnability_history: share of the batch for unseen/stale questions
    skip_prob: float = 0.9  # skip_zero_variance: chance to skip an all-equal question
    max_refill_rounds: int = 4  # filter_groups: extra sampling rounds to refill the batch
    # sfl, LILO's buffered variant (thomfoster/VinePPO math_episode_generator_with_sfl.py; defaults: its
    # configs/true_sfl/true_sfl_rec_config_math.jsonnet): every refresh_every (T) iterations roll out
    # n_candidates (N) random questions n_select (L) times and keep the buffer_size (K) best by p(1-p);
    # each batch takes buffer_frac (p) of its questions from the buffer, the rest uniformly.
    refresh_every: int = 50
    n_candidates: int = 1280
    buffer_size: int = 256
    buffer_frac: float = 0.5


@dataclass
class LoggerConfig:
    name: str = MISSING  # console | wandb
    project: str = "rlreason"
    entity: str | None = None
    mode: str = "auto"  # auto (online when an API key is set, else offline) | online | offline | disabled
    log_samples: int = 4  # completions per eval logged as a table


@dataclass
class TrainerConfig:
    iterations: int = 100
    questions_per_iteration: int = 64
    eval_every: int = 10
    eval_samples: int = 16  # n samples per test question at eval_temperature (mean acc, maj@n, pass@n)
    eval_temperature: float = 0.35
    eval_greedy: bool = True
    eval_top_p: float | None = None  # nucleus of the eval samples; None = rollout.top_p
    # eval/accuracy (the summary's headline): greedy | mean (mean@eval_samples, the VinePPO paper's metric);
    # greedy falls back to mean when eval_greedy is off
    eval_headline: str = "greedy"
    eval_max_questions: int | None = None  # subset of the test split per eval (None = all)
    checkpoint_every: int = 1
    progress: bool = True


@dataclass
class RewardConfig:
    # How a response's answer is checked. auto = the data's own (arith, gsm8k, math; jsonl: math).
    # math: \boxed{} / "#### N" / "the answer is X", equal as numbers or by math-verify;
    # hash: only "#### N", equal as numbers or as stripped strings; exact: the whole response, stripped,
    # equals the gold answer.
    checker: str = "auto"
    timeout_s: float = 5.0  # hard deadline per graded response
    workers: int = 2  # grading processes


@dataclass
class DistConfig:
    """Data-parallel runs under torchrun (rlreason/dist/); ignored in a single process."""
    offload_ref: bool = False  # GPUs: keep the reference model's shards in CPU memory between uses
    timeout_s: float = 1800.0  # a collective waiting longer than this fails the run (a rank died or hung)


@dataclass
class Config:
    algo: AlgoConfig = MISSING
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    engine: EngineConfig = MISSING
    curriculum: CurriculumConfig = MISSING
    logger: LoggerConfig = MISSING
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    seed: int = 0
    run_name: str = MISSING
    resume: str = "auto"  # auto | never | must
    device: str = "auto"  # auto | cpu | cuda
    cache_dir: str = "${oc.env:RLREASON_CACHE,'~/.cache/rlreason'}"
    dry_run: bool = False  # print the plan and exit before any compute


@dataclass
class EvalOptions:
    n: int = 4  # samples per question at `temperature`: mean@n, maj@n, pass@n (0: greedy only)
    temperature: float = 0.35
    top_p: float = 1.0
    greedy: bool = True  # also decode greedily (the headline accuracy, as in training's evals)
    # None: a run dir's own rollout.max_new_tokens (so the numbers match its evals), else what
    # model.max_model_len leaves after the longest prompt.
    max_new_tokens: int | None = None
    split: str = "test"  # test | train
    max_questions: int | None = None  # the first N questions of the split (None = all)
    batch_questions: int = 64  # questions per engine call (one step of the progress bar)
    progress: bool = True


@dataclass
class EvalConfig:
    """`python -m rlreason.eval` (conf/eval.yaml): the data, model, engine and reward nodes of training."""

    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    engine: EngineConfig = MISSING
    reward: RewardConfig = field(default_factory=RewardConfig)
    eval: EvalOptions = field(default_factory=EvalOptions)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    cache_dir: str = "${oc.env:RLREASON_CACHE,'~/.cache/rlreason'}"


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(name="base_eval", node=EvalConfig)
    OmegaConf.register_new_resolver("rlreason.model_name", model_name, replace=True)


def model_name(path: str) -> str:
    """The name a run dir gets for `model.path`: its last component ("org/name" -> "name"); a checkpoint
    dir (RUN/checkpoints/iter_N[/policy]) -> "RUN-iter_N", so evals of different checkpoints differ."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[-1] == "policy":
        parts = parts[:-1]
    if len(parts) >= 3 and parts[-2] == "checkpoints":
        return f"{parts[-3]}-{parts[-1]}"
    return parts[-1] if parts else "model"


def grader_task(cfg: Any) -> str:
    """What the grader (and VinePPO's step splitter) is told the task is: reward.checker, or the data's."""
    if cfg.reward.checker != "auto":
        return cfg.reward.checker
    return "math" if cfg.data.name == "jsonl" else cfg.data.name


class ConfigError(ValueError):
    """A config that composes but cannot run; the message says what to change."""


def check_run_dir(run_dir: Path) -> None:
    """The output dir must be writable before anything is loaded or computed."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"output dir {run_dir} is not writable ({e.strerror}); set hydra.run.dir=... "
                          "to a writable location") from e


CHOICES = {
    "algo.name": ("vineppo", "ppo", "grpo", "rloo"),
    "data.name": ("arith", "gsm8k", "math", "jsonl"),
    "data.source": ("local", "hub", "generated"),
    "data.steps.rule": ("auto", "vineppo", "lines", "sentences"),
    "trainer.eval_headline": ("greedy", "mean"),
    "engine.name": ("vllm", "hf"),
    "curriculum.name": ("uniform", "learnability", "sfl", "learnability_history", "skip_zero_variance",
                        "filter_groups"),
    "logger.name": ("console", "wandb"),
    "logger.mode": ("auto", "online", "offline", "disabled"),
    "learner.schedule": ("linear", "constant", "cosine"),
    "algo.kl_reduction": ("sequence_sum", "token_mean"),
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
    problems = [f"unknown config key {key}{suggest(key, cls)}: it is not in the schema (rlreason/config.py), "
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
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


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
    if cfg.algo.kl_coef < 0:
        problems.append(f"algo.kl_coef={cfg.algo.kl_coef} must be >= 0 (0 disables the KL term)")
    for path in ("algo.ratio_threshold", "algo.tis_cap"):
        if get(path) is not None and not get(path) > 0:
            problems.append(f"{path}={get(path)} must be > 0, or null for off")
    if not cfg.algo.vf_coef > 0:
        problems.append(f"algo.vf_coef={cfg.algo.vf_coef} must be > 0")
    if not 0 < cfg.algo.clip_eps < 1:
        problems.append(f"algo.clip_eps={cfg.algo.clip_eps} must be in (0, 1)")
    steps = cfg.data.steps
    if steps.max_value_steps is not None and steps.max_value_steps < 0:
        problems.append(f"data.steps.max_value_steps={steps.max_value_steps} must be >= 0 or null (no cap)")
    if steps.min_chars < 0 or steps.max_chars < 1:
        problems.append(f"data.steps.min_chars={steps.min_chars} must be >= 0 and data.steps.max_chars="
                        f"{steps.max_chars} >= 1")
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
    if not 0 <= cfg.curriculum.explore_frac <= 1:
        problems.append(f"curriculum.explore_frac={cfg.curriculum.explore_frac} must be in [0, 1]")
    if not 0 <= cfg.curriculum.skip_prob <= 1:
        problems.append(f"curriculum.skip_prob={cfg.curriculum.skip_prob} must be in [0, 1]")
    if not 0 < cfg.curriculum.decay <= 1:
        problems.append(f"curriculum.decay={cfg.curriculum.decay} must be in (0, 1]")
    problems += _shared_problems(cfg)
    _raise(problems)


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
    if d.name == "arith" and d.source != "generated":
        problems.append("data=arith is generated: set data.source=generated")
    if d.name != "arith" and d.source == "generated":
        problems.append(f"data={d.name} has no generator: use data.source=local or hub")
    if d.name != "arith":
        for split in splits:
            hub = d.hub_test_id or d.hub_id if split == "test" else d.hub_id
            if not getattr(d, f"{split}_path") and not hub:
                problems.append(f"data.{split}_path is unset and there is no hub id to fall back on")
    if d.name == "jsonl" and not (d.fields.problem and d.fields.answer):
        problems.append("data=jsonl needs data.fields.problem and data.fields.answer (the row fields holding them)")
    if not d.use_chat_template:
        problems += _template_problems(d)
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
