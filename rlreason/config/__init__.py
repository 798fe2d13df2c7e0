"""Typed config schema, registered in Hydra's ConfigStore.

Every YAML file under `conf/` is validated against these dataclasses when Hydra composes the config,
so a wrong type or an unknown key fails before any compute. One dataclass per config group; the group
names mirror the packages (`algo/` -> rlreason.algo, `engine/` -> rlreason.engine, ...).
Cross-field checks that a type cannot express live in `validate()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from rlreason.config.data import (  # noqa: F401 (re-exported)
    ArithConfig,
    CountdownConfig,
    DataConfig,
    FieldsConfig,
    StepsConfig,
)
from rlreason.config.env import EnvConfig
from rlreason.resolvers import _sweep_subdir, model_name  # noqa: F401 (the config's resolvers; re-exported)


@dataclass
class ModelConfig:
    """model=NAME (conf/model/): the policy's checkpoint and how it is loaded (rlreason/model/)."""

    name: str = MISSING  # the model's part of run_name (model=hf: the path's last component)
    # HF hub id or local dir. For `tiny` it is the committed checkpoint; see rlreason.model.tiny.
    path: str = MISSING
    tokenizer: str | None = None  # defaults to `path`
    dtype: str = "auto"  # auto -> bfloat16 on GPU, float32 on CPU
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, slower updates
    max_model_len: int | None = 2048  # None: the model's own (max_position_embeddings in its config.json)
    # Only for the tiny model: how to build it from nothing when the committed one does not match.
    build: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineConfig:
    """engine=NAME (conf/engine/): what generates rollouts, MC continuations and evals (rlreason/engine/)."""

    name: str = MISSING  # vllm | hf
    enable_prefix_caching: bool = True  # vllm: reuse the KV cache of shared prefixes (a question's samples, MC states)
    block_size: int | None = None  # None -> 32 on CPU (needs a multiple of 32), vLLM default on GPU
    kv_cache_memory_bytes: int | None = None  # CPU KV cache size; None -> 256 MiB on CPU
    gpu_memory_utilization: float = 0.5  # vllm on GPUs: the share of the GPU's memory the engine takes
    enforce_eager: bool = True  # vllm: no CUDA graphs (a faster start, slower decoding on GPUs)
    sleep_mode: bool = False  # GPU: free engine memory during the learner phase
    max_num_seqs: int = 512  # one wave for 64 prompts x 8 samples; measured ~4% faster than 256 on the tiny model
    tensor_parallel_size: int = 1  # vllm: GPUs one engine's model is split over
    hf_batch_size: int = 64  # engine=hf: sequences generated per forward batch
    # vllm: the engine core (scheduler, model, KV cache) in a process of its own instead of this one
    # (VLLM_ENABLE_V1_MULTIPROCESSING=1); weights then travel through a safetensors file in /dev/shm.
    # Starts in 20-30 s rather than ~3 s. With trainer.async_level=1 the engine's work leaves the
    # learner's process (its GIL, its thread pools); `cpu_threads`: the engine process's OpenMP threads
    # on CPU (null: vLLM's own choice), the cores left are the learner's.
    separate_process: bool = False
    cpu_threads: int | None = None
    # separate_process: weights via a file in /dev/shm (file) or a transfer group (group: gloo on CPU, NCCL
    # on GPUs, where it needs devices; no ack within transfer_timeout_s stops the run). devices: the node's
    # engine GPUs, disjoint from the learners'; local rank r's engine gets devices[r*T:(r+1)*T]
    # (rlreason/engine/devices.py).
    weight_transfer: str = "file"
    transfer_timeout_s: float = 120.0
    devices: list[int] | None = None


@dataclass
class RolloutConfig:
    """How the training responses are sampled (rlreason/rollout.py)."""

    samples_per_question: int = 8  # N responses per question (the GRPO/RLOO group size)
    temperature: float = 1.0  # sampling temperature of the rollouts and MC continuations
    top_p: float = 1.0  # nucleus sampling (1.0: off)
    max_new_tokens: int = 96  # the response budget in tokens; a longer response is cut (finish reason "length")
    # Generation also ends at these strings (kept in the text), for rollouts, MC continuations and eval.
    # The reference stops at "\n\n\nProblem:" (a model that starts the next few-shot problem).
    stop: list[str] = field(default_factory=list)
    # The largest share of the task's gold solutions max_new_tokens may cut: more stops the run before compute,
    # naming the lengths (rlreason/data/budget.py). null: no check (a budget meant to be short).
    max_gold_cut: float | None = 0.05


@dataclass
class MCConfig:
    """VinePPO's Monte-Carlo cost options (rlreason/algo/mc.py, vine_tree.py); each states its bias."""

    # Where V(s_0) comes from. mc: K continuations from the prompt (the reference). group: the mean reward
    # of the question's other N - 1 rollouts, which are N - 1 samples from s_0 already paid for
    # (leave-one-out: a trajectory's baseline never sees its own reward). Unbiased only when the group was
    # not chosen by its own rewards: curriculum=filter_groups, and learnability with n_select = N (the
    # default 8 = 8), train on the rollouts they kept for being mixed, and then the siblings' mean depends
    # on the trajectory's outcome (a kept 4-of-8 group: 3/7 for a right one, 4/7 for a wrong one). GRPO's
    # and RLOO's baselines share this; mc's fresh continuations do not.
    v0: str = "mc"
    # Adaptive K, the reference's confidence-interval-aware expander: start at algo.mc_rollouts, add
    # new_rollouts to each state whose Wald interval is longer than ci_length, up to max_rollouts.
    # null: fixed K. Biased towards 0 and 1 (rlreason/algo/mc.py gives the figures).
    max_rollouts: int | None = None
    new_rollouts: int = 4
    ci_length: float = 0.05
    # true: the last round only fills up to max_rollouts (the cap bounds the cost). false: the reference's
    # rule, a full new_rollouts while n < max_rollouts, so a state can end at up to
    # max_rollouts + new_rollouts - 1 (K0 = 2, 4 new, cap 4: mixed states end at 6, not 4).
    cap_last_round: bool = True
    # Biased shortcut: a question whose N rollouts all got the same reward gets no MC and advantage 0 on
    # every token (as GRPO/RLOO would give it); the step credit inside such groups is lost.
    skip_uniform_groups: bool = False
    # "Vine tree": also train on the MC continuations (their own tokens, the prefix masked) with
    # advantage r_j - mean of the K - 1 siblings; only those with a non-zero advantage, at most
    # tree_max per iteration (a seeded uniform subset). rlreason/algo/vine_tree.py says what it weights.
    tree: bool = False
    tree_max: int = 128


@dataclass
class AlgoConfig:
    """algo=NAME (conf/algo/): the advantage estimator and the clipped policy objective (rlreason/algo/)."""

    name: str = MISSING  # vineppo | ppo | grpo | rloo
    clip_eps: float = 0.2  # PPO's clip: the ratio pi/pi_old is clipped to [1 - clip_eps, 1 + clip_eps]
    # The policy loss's variants, with their papers: docs/losses.md (rlreason/learner/objective.py).
    clip_eps_high: float | None = None  # DAPO's clip-higher: upper clip 1 + this (null: clip_eps)
    # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm; null: token-mean (seq-mean-token-mean for GSPO)
    loss_agg: str | None = None
    ratio_level: str = "token"  # token (PPO) | sequence (GSPO's length-normalised sequence ratio)
    kl_coef: float = 1e-4  # k3 KL to the frozen reference; 0 disables (no reference model loaded)
    # sequence_sum: beta x (sum over a response's tokens of k3, each clamped to [0, 10]), mean over
    # sequences, as the reference (algo/vineppo.yaml, algo/ppo.yaml); token_mean: mean over tokens,
    # ~1/length as strong at the same beta (grpo/rloo here).
    kl_reduction: str = "token_mean"
    # Whiten advantages over each minibatch's tokens before the loss (reference: on for vineppo and ppo).
    whiten_advantages: bool = False
    entropy_coef: float = 0.0  # weight of an entropy bonus in the policy loss (0: none)
    # Skip the policy step of a minibatch whose mean ratio pi/pi_old exceeds this (reference: 10); null: never.
    ratio_threshold: float | None = 10.0
    # Truncated importance sampling: weight each token's policy loss by min(pi_learner_old / pi_engine,
    # tis_cap), correcting for the engine sampling from another distribution (top_p < 1, bf16 kernels).
    # null: off (the reference has no such correction).
    tis_cap: float | None = None
    mc_rollouts: int = 9  # vineppo: K continuations per intermediate state (the first round's, with adaptive K)
    mc: MCConfig = field(default_factory=MCConfig)
    gamma: float = 1.0  # ppo: GAE's discount
    lam: float = 1.0  # ppo: GAE's lambda
    value_clip: float = 0.2  # ppo: the critic's values are clipped to this distance from the old values
    # Scales the critic's loss, 0.5 x mean clipped squared error. The critic has its own optimizer and
    # gradient clip (as the reference), so this only matters against learner.grad_clip; 1.0 = the reference.
    vf_coef: float = 1.0
    critic_lr: float | None = None  # ppo: the critic's learning rate; None -> learner.lr (the reference uses one learning rate for both)
    normalize_std: bool = True  # grpo: divide by the group's std; False = Dr.GRPO


@dataclass
class LoraConfig:
    """learner.lora: adapters on a frozen base (rlreason/learner/lora.py, docs/lora.md). LoRA wants a ~10x
    larger learner.lr than full fine-tuning (Thinking Machines, "LoRA Without Regret", 2025)."""
    r: int = 0  # rank; 0 = off (full fine-tuning)
    alpha: float = 32.0  # the adapter's scale is alpha / r
    dropout: float = 0.0  # dropout on the adapters' input
    # The attention and MLP projections (Llama / Qwen names); "LoRA Without Regret": all layers, MLP included
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])
    # How the engine gets the policy after an update: merged = base + adapter, every weight loaded in place
    # (as a full fine-tune's); adapter = vLLM's own LoRA (engine=vllm started with enable_lora), a new
    # adapter per policy version, only its bytes moved. merged is the default: measured faster per
    # iteration on CPU (bench/results/lora_sync.json, docs/lora.md)
    sync: str = "merged"  # merged | adapter


@dataclass
class LearnerConfig:
    """The policy update (rlreason/learner/): AdamW, its learning-rate schedule, PPO epochs, batch sizes."""

    lr: float = 1e-6  # AdamW's peak learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW's betas
    warmup_ratio: float = 0.03  # the share of the run's optimizer steps spent warming up
    # linear: transformers' warmup from 0; log: the reference's DeepSpeed WarmupDecayLR warmup, lr x
    # log(step + 1) / log(W) over W = max(2, ceil(warmup_ratio x steps)) (rlreason/learner/schedule.py)
    warmup: str = "linear"  # linear | log
    schedule: str = "linear"  # after warmup: linear (decay to 0) | constant | cosine (warmup=linear only)
    grad_clip: float = 1.0  # the policy's gradient norm is clipped to this
    epochs: int = 2  # PPO epochs over each iteration's episodes
    minibatch_size: int = 64  # episodes per optimizer step
    micro_batch_size: int = 16  # episodes per forward/backward (gradient accumulation)
    # Token budget per forward/backward (verl's dynamic batch size): null = micro_batch_size episodes, each
    # micro-batch padded to its longest; N = episodes binned so that each micro-batch's prompt + response
    # tokens are <= N (an episode longer than N alone), packed into one padding-free row (micro_batch_size is
    # then unused). Same losses and gradients, memory bounded by tokens (docs/packing.md).
    max_tokens_per_micro_batch: int | None = None
    max_bad_updates: int = 3  # consecutive NaN/inf updates before the run stops
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class CurriculumConfig:
    """curriculum=NAME (conf/curriculum/): which questions each iteration trains on (rlreason/curriculum/)."""

    name: str = MISSING  # uniform | learnability | sfl | learnability_history | skip_zero_variance | filter_groups
    pool_factor: int = 4  # learnability: candidate pool = pool_factor x batch
    n_select: int = 8  # learnability, sfl (L): attempts per candidate to estimate p
    bessel: bool = False  # p(1-p) * n/(n-1)
    decay: float = 0.5  # history variants: weight of an attempt = decay ** (age in iterations)
    window: int = 20  # history variants: only the last `window` iterations count
    explore_frac: float = 0.25  # learnability_history: share of the batch for unseen/stale questions
    # learnability_history: a question trained in the last `cooldown` iterations is not picked again by its
    # score. 0 (off) re-picked the same top questions every iteration and lost 4.6 points on arith; 10 lost
    # 0.7 against uniform (experiments/RESULTS.md, 2026-12-03)
    cooldown: int = 10
    skip_prob: float = 0.9  # skip_zero_variance: chance to skip an all-equal question
    max_refill_rounds: int = 4  # filter_groups: extra sampling rounds to refill the batch
    # How every curriculum walks the train set: false = epochs without replacement (each question once per
    # epoch); true = a fresh random subset every iteration, seeded by (seed, iteration), no repeats within
    # an iteration (the reference's dataset_sample_with_replacement, experiment=paper).
    with_replacement: bool = False
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
    """logger=NAME (conf/logger/): where metrics go besides the run dir's metrics.jsonl (rlreason/logger/)."""

    name: str = MISSING  # console | wandb
    project: str = "rlreason"  # W&B project
    entity: str | None = None  # W&B entity (team or user); null: the account's default
    mode: str = "auto"  # auto (online when an API key is set, else offline) | online | offline | disabled
    log_samples: int = 4  # completions per eval logged as a table
    # W&B run group; null = the sweep dir's name under `-m` (a multirun is one group), none otherwise.
    # Runs also carry job_type algo-curriculum and tags algo, curriculum, data, so the W&B UI can group
    # a sweep's runs the way experiments/sweep_report.py does.
    group: str | None = None


@dataclass
class TrainerConfig:
    """The loop (rlreason/trainer/): how long, how large an iteration, when to evaluate and checkpoint."""

    iterations: int = 100  # iterations to train (a resumed run continues up to this)
    questions_per_iteration: int = 64  # questions per batch, each with rollout.samples_per_question responses
    eval_every: int = 10  # evaluate every this many iterations (and at iteration 0 and the last)
    eval_samples: int = 16  # n samples per test question at eval_temperature (mean acc, maj@n, pass@n)
    eval_temperature: float = 0.35  # temperature of the eval samples
    eval_greedy: bool = True  # also decode each test question greedily (eval/greedy)
    eval_top_p: float | None = None  # nucleus of the eval samples; None = rollout.top_p
    # eval/accuracy (the summary's headline): greedy | mean (mean@eval_samples, the VinePPO paper's metric);
    # greedy falls back to mean when eval_greedy is off
    eval_headline: str = "greedy"
    eval_max_questions: int | None = None  # subset of the test split per eval (None = all)
    checkpoint_every: int = 1  # checkpoint every this many iterations (and at the last)
    # Every response cut at rollout.max_new_tokens this many iterations in a row: stop, exit 2 (0 = never);
    # more than half cut: a warning each iteration (rlreason/trainer/truncation.py)
    stop_all_truncated: int = 3
    # How many of the newest checkpoints to keep (null = all; e.g. the value-estimation analysis of
    # experiments/value_analysis.py reads a PPO run's critic at several iterations).
    keep_checkpoints: int | None = 2
    progress: bool = True  # a progress bar on the terminal
    # 0: each iteration produces its batch, then trains on it. 1: one step off: iteration t+1's batch
    # (selection, rollouts, grading, VinePPO's MC) is produced while the learner trains on batch t, under
    # the weights before that update (rlreason/trainer/produce.py; docs/async.md).
    # Needs algo.tis_cap; null there gets ASYNC_TIS_CAP.
    async_level: int = 0


@dataclass
class OverlongConfig:
    """DAPO's soft overlong punishment on training rewards (rlreason/reward/overlong.py); penalty 0: off."""

    buffer_tokens: int = 0  # the penalty ramps from 0 to -penalty over the budget's last buffer_tokens
    penalty: float = 0.0  # the largest penalty, reached at the budget's end


@dataclass
class RewardConfig:
    """How responses are graded (rlreason/reward/)."""

    # How a response's answer is checked. auto = the data's own (arith, gsm8k, math; jsonl: math).
    # math: \boxed{} / "#### N" / "the answer is X", equal as numbers or by math-verify;
    # hash: only "#### N", equal as numbers or as stripped strings; exact: the whole response, stripped,
    # equals the gold answer.
    checker: str = "auto"
    # Your own reward instead (rlreason/reward/function.py): PATH.py:NAME or package.module:NAME, called
    # as NAME(response, record) -> float | dict of components; the checker is then unused.
    fn: str | None = None
    weights: dict[str, float] = field(default_factory=dict)  # per component of fn's dict (default 1 each)
    success_threshold: float = 1.0  # success = component `correct` if returned, else reward >= this
    batched: bool = False  # fn takes (responses, records) -> list, on chunks of batch_size responses
    batch_size: int = 64  # batched: responses per call of fn
    timeout_s: float = 5.0  # hard deadline per graded response
    # Deadline for reward.fn's import check before compute, and for each grading worker to start (its
    # imports: the user's module, math-verify's warm-up); a hang at import is an error, not a stuck run.
    startup_timeout_s: float = 60.0
    workers: int = 2  # grading processes
    overlong: OverlongConfig = field(default_factory=OverlongConfig)


@dataclass
class DistributedConfig:
    """Data-parallel runs under torchrun (rlreason/distributed/); ignored in a single process."""
    offload_ref: bool = False  # GPUs: keep the reference model's shards in CPU memory between uses
    timeout_s: float = 1800.0  # a collective waiting longer than this fails the run (a rank died or hung)


@dataclass
class Config:
    """The training config: conf/config.yaml composes it for `python -m rlreason.run`."""

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
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    env: EnvConfig = field(default_factory=EnvConfig)  # multi-turn environments (rlreason/envs/)
    seed: int = 0  # seeds sampling, data order and initialisation; part of run_name
    run_name: str = MISSING  # the run dir under outputs/ (conf/config.yaml: algo-data-model-curriculum-sSEED)
    # auto: continue from the run dir's latest checkpoint when there is one; never: stop if there is one;
    # must: stop if there is none
    resume: str = "auto"
    device: str = "auto"  # auto | cpu | cuda
    cache_dir: str = "${oc.env:RLREASON_CACHE,'~/.cache/rlreason'}"  # tiny models built at run time, W&B files
    dry_run: bool = False  # print the plan and exit before any compute


# The eval CLI's schema builds on the classes above.
from rlreason.config.eval import EvalConfig, EvalOptions  # noqa: E402, F401 (re-exported)


def register_configs() -> None:
    cs = ConfigStore.instance()
    for name, schema in (("base_config", Config), ("base_eval", EvalConfig)):
        node = OmegaConf.structured(schema)
        # reward.weights is keyed by the reward function's own component names: new keys are its point
        # (`reward.weights.format=0.1`, no Hydra `+`), so that one node is left open.
        OmegaConf.set_struct(node.reward.weights, False)
        cs.store(name=name, node=node)
    OmegaConf.register_new_resolver("rlreason.model_name", model_name, replace=True)


def grader_task(cfg: Any) -> str:
    """What the grader (and VinePPO's step splitter) is told the task is: reward.checker, or the data's;
    "fn" when a reward function grades; "env" when an environment (env.cls) does."""
    if getattr(getattr(cfg, "env", None), "cls", None):  # its steps give the rewards (rlreason/envs/)
        return "env"
    if getattr(cfg.reward, "fn", None):  # a run dir's config from before reward.fn has no such key
        return "fn"
    if cfg.reward.checker != "auto":
        return cfg.reward.checker
    return "math" if cfg.data.name == "jsonl" else cfg.data.name


class ConfigError(ValueError):
    """A config that composes but cannot run; the message says what to change."""


def check_run_dir(run_dir: Path) -> None:
    """The output dir must be writable before anything is loaded or computed."""
    import os

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # One probe per process: under torchrun every rank checks the same dir at once, and a shared
        # probe file could be unlinked by one rank between another's write and unlink.
        probe = run_dir / f".write_probe.{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"output dir {run_dir} is not writable ({e.strerror}); set hydra.run.dir=... "
                          "to a writable location") from e
