"""Build the rooms of a run (data, model, engine, grader, learner, store, curriculum, logger) and restore
them from the run dir's last checkpoint when resuming.

Everything that can be checked without compute is checked first, so a bad run fails in seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from rlreason import distributed
from rlreason.config import ConfigError, check_run_dir, grader_task
from rlreason.learner import lora
from rlreason.trainer import checkpoint
from rlreason.validate import tensor_parallel_problems

log = logging.getLogger(__name__)

# One step off, the learner's pi_old differs from the behaviour policy by one update: the importance
# weight min(pi_old / pi_behaviour, cap) (algo.tis_cap, AReaL's decoupled PPO) is required, and a null cap
# gets this one: the cap of Yao et al.'s truncated importance sampling and verl's rollout_is_threshold.
# Measured one step off on the tiny model (bench/results/async.json): few tokens reach it.
ASYNC_TIS_CAP = 2.0

# Changing any of these between a checkpoint and a resume makes the checkpoint incompatible.
FINGERPRINT_KEYS = ("model.name", "model.path", "algo.name", "data.name", "curriculum.name",
                    "curriculum.with_replacement",  # the sampler's saved order is of one kind or the other
                    "learner.lora.r",  # a checkpoint holds an adapter of that rank, or the full policy
                    "env.cls")  # the run dir does not name the environment: its episodes are another task


@dataclass
class Run:
    cfg: Any
    run_dir: Path
    tokenizer: Any
    train: list
    eval_questions: list
    engine: Any
    grader: Any
    roller: Any
    learner: Any
    store: Any
    sampler: Any
    logger: Any
    start_iteration: int = 0
    weights_iteration: int = 0  # the iteration whose update produced the engine's weights
    state: dict[str, Any] = field(default_factory=dict)  # history that survives resume (evals, wall clock)
    dist: distributed.Dist = field(default_factory=distributed.current)

    def close(self, close_engine: bool = True, clean: bool = True) -> None:
        """Release what the run opened; an engine passed in by the caller stays the caller's.
        `clean=False` (an error): no collective, so a failing rank never waits for the others."""
        self.logger.close()
        self.grader.close()
        if self.roller.env is not None:
            self.roller.env.close()
        self.store.close()
        if close_engine:
            if clean:  # closing an in-process vLLM engine tears down torch.distributed's groups with it
                self.dist.barrier()
            if clean or not self.dist.active:
                self.engine.close()


def store_ids(run_name: str, run_dir: Path) -> tuple[str, tuple[str, ...]]:
    """The stats store's run id, from the run_name alone, so that a run dir moved or copied elsewhere
    resumes; and the id stores written before 2026-12-07 carry (bound to the dir's path as well)."""
    legacy = hashlib.sha1(f"{run_name}|{run_dir.resolve()}".encode()).hexdigest()[:16]
    return hashlib.sha1(run_name.encode()).hexdigest()[:16], (legacy,)


def fingerprint(cfg) -> dict[str, Any]:
    return {k: OmegaConf.select(cfg, k) for k in FINGERPRINT_KEYS}


def find_checkpoint(cfg, run_dir: Path, world: int = 1) -> tuple[Path, dict] | None:
    found = checkpoint.load_latest(run_dir / "checkpoints")
    if cfg.resume == "never" and found:
        raise ConfigError(f"{run_dir} already holds checkpoints and resume=never; use resume=auto to continue "
                          "it, or pick a fresh run dir with run_name=...")
    if cfg.resume == "must" and not found:
        raise ConfigError(f"resume=must but {run_dir}/checkpoints holds no checkpoint")
    if found:
        check_world_size(found, world)
        saved = found[1]["fingerprint"]
        now = fingerprint(cfg)
        # A key the checkpoint predates is not compared (older checkpoints stay resumable).
        diff = {k: (saved[k], now[k]) for k in now if k in saved and saved[k] != now[k]}
        if diff:
            lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"checkpoint {found[0]} is incompatible with this config ({lines}); use another "
                              "run_name=... for a new run")
    return found


def check_world_size(found: tuple[Path, dict], world: int) -> None:
    """A checkpoint resumes at the world size that wrote it (its optimizer and RNG state are per rank)."""
    saved = found[1].get("world_size", 1)
    if saved != world:
        how = (f"torchrun --nproc-per-node={saved} -m rlreason.run ..." if saved > 1
               else "python -m rlreason.run ..., one process")
        raise ConfigError(f"checkpoint {found[0]} was written by a run of {saved} process(es) and this run has "
                          f"{world}: resume it at the world size it was saved with ({how}), or start a new run "
                          "with run_name=...")


def resolve_device(cfg) -> tuple[str, torch.dtype]:
    from rlreason.cuda_check import current_problem

    if cfg.device != "cpu" and not torch.cuda.is_available() and (why := current_problem()):
        # A GPU machine whose torch cannot use it: device=auto would train on the CPU, silently and ~100x
        # slower. device=cpu says that is meant.
        raise ConfigError(f"{why}; or run with device=cpu to use the CPU on purpose")
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=cpu or device=auto")
    name = cfg.model.dtype if cfg.model.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    return device, getattr(torch, name)


def load_tokenizer(cfg, model_path: str, tokenizer_path: str | None = None):
    """The tokenizer (model.tokenizer, else `tokenizer_path`, else the model's own), checked against the
    model before any compute: its vocabulary fits the embedding, and it has an eos token (pad falls back
    on eos)."""
    from transformers import AutoConfig, AutoTokenizer

    tok_path = cfg.model.tokenizer or tokenizer_path or model_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_path)
        model_config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load model/tokenizer from {model_path!r}: {e}") from e
    vocab = getattr(model_config.get_text_config(), "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise ConfigError(f"tokenizer {tok_path} has {len(tokenizer)} tokens but model {model_path} has a "
                          f"vocabulary of {vocab}: they do not belong together "
                          "(set model.tokenizer to the model's own tokenizer)")
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"tokenizer {tok_path} has no eos token, so no response could ever end: set "
                          "model.tokenizer to a tokenizer that defines eos_token (tokenizer_config.json), e.g. "
                          "the model's own")
    if tokenizer.pad_token_id is None:  # batches are padded with eos, masked out (the common convention)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def context_length(cfg, model_path: str) -> int:
    """model.max_model_len, or the model's own position limit when null; more than the model's own
    limit is refused here (vLLM would refuse it later, with a traceback)."""
    from transformers import AutoConfig

    text = AutoConfig.from_pretrained(model_path).get_text_config()
    own = getattr(text, "max_position_embeddings", None)
    wanted = cfg.model.max_model_len
    if wanted is None:
        if own is None:
            raise ConfigError(f"model {model_path} does not say its context length: set model.max_model_len")
        return int(own)
    if own is not None and wanted > own:
        raise ConfigError(f"model.max_model_len={wanted} is more than model {model_path} supports "
                          f"(max_position_embeddings={own}): set model.max_model_len={own} or less, or null")
    return wanted


def iterations_updates(cfg) -> int:
    episodes = cfg.trainer.questions_per_iteration * cfg.rollout.samples_per_question
    return cfg.trainer.iterations * cfg.learner.epochs * max(episodes // cfg.learner.minibatch_size, 1)


def _find_on_main(cfg, run_dir: Path, world: int) -> tuple[tuple[Path, dict] | None, str | None]:
    """The checkpoint to resume from, and the stats store checked against this run, before any compute."""
    from rlreason.curriculum.store import StoreError, check_store

    try:
        found = find_checkpoint(cfg, run_dir, world)  # first: its message names the setting that changed
        check_store(run_dir / "stats.sqlite", *store_ids(cfg.run_name, run_dir))
        return found, None
    except (ConfigError, StoreError) as e:
        return None, str(e)


def check_fit(cfg, tokenizer, context: int, splits: dict[str, list]) -> None:
    """Every prompt the run will send fits the context with rollout.max_new_tokens to spare, and the
    tokenizer can read it (rlreason/data/fit.py); a ConfigError before any engine starts, else."""
    from rlreason.data import prompt_template
    from rlreason.data.budget import check_budget, gold_lengths
    from rlreason.data.fit import check_prompts, measure_prompts, tiny_hint

    template, chat, budget = prompt_template(cfg.data), cfg.data.use_chat_template, cfg.rollout.max_new_tokens
    check_prompts([measure_prompts(name, qs, tokenizer, template, chat) for name, qs in splits.items()],
                  context=context, max_new_tokens=budget, budget=f"rollout.max_new_tokens={budget} for the response",
                  lower="rollout.max_new_tokens", hint=tiny_hint(cfg.model.name, cfg.data.name, context))
    # the budget against the task's own solutions (rlreason/data/budget.py): the train split's, what RL samples
    if note := check_budget(gold_lengths(splits["train"], tokenizer), budget, cfg.rollout.max_gold_cut, cfg.data.name):
        log.info(note)


def build(cfg, run_dir: Path, engine=None) -> Run:
    """`engine`: an already running engine to use (tests share one); it is synced to the policy here."""
    from rlreason.curriculum import StatsStore, make_sampler
    from rlreason.data import load_questions, prompt_template
    from rlreason.engine import make_engine
    from rlreason.envs.setup import make_env
    from rlreason.learner.learner import Learner
    from rlreason.logger import Logger
    from rlreason.model.heldout import held_out_filter
    from rlreason.model.load import resolve_model_path
    from rlreason.reward import make_grader, overlong
    from rlreason.reward.meter import GradeMeter
    from rlreason.rollout import Roller

    dist = distributed.setup(cfg.distributed.timeout_s)
    if cfg.trainer.async_level and cfg.algo.tis_cap is None:
        cfg.algo.tis_cap = ASYNC_TIS_CAP  # before the learner reads it, and the logger records it
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))
    # train() skips validate(): the checks that depend on the world size run again here
    if problems := (tensor_parallel_problems(cfg.engine, dist.world, local_world, cfg.trainer.async_level)
                    + lora.sync_problems(cfg, dist.world)):
        raise ConfigError("; ".join(problems))
    check_run_dir(run_dir)
    # Rank 0 alone looks (it cleans up a half-written checkpoint) and tells the others what it found.
    found, problem = dist.broadcast(_find_on_main(cfg, run_dir, dist.world) if dist.main else None)
    if problem:
        raise ConfigError(problem)
    train, test = load_questions(cfg.data, needs_answer=not (cfg.reward.fn or cfg.env.cls),
                                 held_out=held_out_filter(cfg.model, cfg.data.name))
    if not train or not test:
        raise ConfigError(f"data={cfg.data.name}: the train split has {len(train)} and the test split "
                          f"{len(test)} questions; both must be non-empty")
    eval_questions = test[: cfg.trainer.eval_max_questions] if cfg.trainer.eval_max_questions else test
    if cfg.curriculum.name == "learnability" and len(train) < cfg.curriculum.pool_factor * cfg.trainer.questions_per_iteration:
        raise ConfigError(f"curriculum pool (curriculum.pool_factor={cfg.curriculum.pool_factor} x "
                          f"trainer.questions_per_iteration={cfg.trainer.questions_per_iteration}) is larger than "
                          f"the train split ({len(train)} questions); lower one of them or use more training data")
    if cfg.trainer.questions_per_iteration > len(train):
        raise ConfigError(f"trainer.questions_per_iteration={cfg.trainer.questions_per_iteration} is larger than "
                          f"the train split ({len(train)} questions)")

    try:
        model_path = resolve_model_path(cfg.model, os.path.expanduser(cfg.cache_dir))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{e} (set model.path to a local model dir or a hub id)") from e
    tokenizer = load_tokenizer(cfg, model_path)
    context = context_length(cfg, model_path)
    if cfg.rollout.max_new_tokens >= context:
        raise ConfigError(f"rollout.max_new_tokens={cfg.rollout.max_new_tokens} leaves no room for the prompt in "
                          f"the model's context of {context} tokens; lower it")
    check_fit(cfg, tokenizer, context, {"train": train, "test": eval_questions})
    if lora.enabled(cfg.learner):  # the adapters' target layers exist, before the engine starts
        lora.check_targets(model_path, cfg.learner.lora)
    lora_rank = lora.engine_lora_rank(cfg.learner.lora)  # learner.lora.sync=adapter: vLLM serves the adapter
    if lora_rank:
        from rlreason.engine._vllm_compat import lora_problem

        if problem := lora_problem(model_path):
            raise ConfigError(f"learner.lora.sync=adapter: {problem}; set learner.lora.sync=merged")
    device, dtype = resolve_device(cfg)
    # A sharded checkpoint holds no HF policy dir: start from the model, its DCP files load below.
    policy_path = str(found[0] / "policy") if found and not dist.active else model_path

    if engine is None:  # a LoRA checkpoint's policy dir is an adapter: the engine loads the base, then the sync
        engine = make_engine(cfg.engine, model_path if lora.enabled(cfg.learner) else policy_path, tokenizer, dtype=str(dtype).removeprefix("torch."),
                             seed=cfg.seed, max_model_len=context, lora_rank=lora_rank)
    grader = make_grader(cfg.reward, grader_task(cfg))
    if dist.active:  # each call split across the ranks' engines and graders, results on every rank
        from rlreason.distributed.engine import ShardedEngine, ShardedGrader

        tp = cfg.engine.tensor_parallel_size if cfg.engine.name == "vllm" else 1
        # Their gathers go over the producer's group (rlreason/distributed/__init__.py): at
        # trainer.async_level=1 the producer's thread makes them while the learner's run on its own group.
        # The eval and the weight sync use the engine too, but from the loop's thread while the producer is
        # idle (after join(), before the next start(): trainer/produce.py), so each group still sees one
        # thread at a time.
        engine, grader = ShardedEngine(engine, dist.producer, tp), ShardedGrader(grader, dist.producer)
    grader = GradeMeter(grader)  # seconds (the grading phase), timeouts and errors (reward/*)
    roller = Roller(engine, tokenizer, grader, task=grader_task(cfg), template=prompt_template(cfg.data),
                    use_chat_template=cfg.data.use_chat_template, temperature=cfg.rollout.temperature,
                    top_p=cfg.rollout.top_p, max_new_tokens=cfg.rollout.max_new_tokens, stop=tuple(cfg.rollout.stop),
                    overlong=overlong.from_config(cfg.reward, cfg.rollout.max_new_tokens))
    roller.env = make_env(cfg, engine, tokenizer)  # env.cls: multi-turn episodes (rlreason/envs/)
    learner = Learner(model_path, cfg.learner, cfg.algo, device=device, dtype=dtype,
                      total_updates=iterations_updates(cfg), pad_id=tokenizer.pad_token_id,
                      temperature=cfg.rollout.temperature, seed=cfg.seed,
                      gradient_checkpointing=cfg.model.gradient_checkpointing, init_path=policy_path,
                      dist=dist, offload_ref=cfg.distributed.offload_ref, max_new_tokens=cfg.rollout.max_new_tokens)
    if dist.main:  # rank 0 owns the run's shared files (rlreason/distributed/rank.py)
        run_id, older = store_ids(cfg.run_name, run_dir)
        store = StatsStore(run_dir / "stats.sqlite", run_id, also=older)
        logger = Logger(cfg.logger, run_dir, OmegaConf.to_container(cfg, resolve=True))
    else:
        from rlreason.distributed.rank import NullStore, QuietLogger

        store, logger = NullStore(), QuietLogger()
    grader.say = logger.print
    sampler = make_sampler(cfg.curriculum, train, store, cfg.seed)

    run = Run(cfg, run_dir, tokenizer, train, eval_questions, engine, grader, roller, learner, store, sampler,
              logger, state={"evals": [], "wall_clock_s": 0.0, "phase_seconds": {}}, dist=dist)
    if found:
        path, state = found
        run.start_iteration = run.weights_iteration = state["iteration"]
        learner.load_state_dict(state["learner"], optimizers=not dist.active)
        if dist.active:
            from rlreason.distributed.checkpoint import load

            load(path, learner_state(learner))
        elif learner.critic is not None:
            learner.critic.load(path / "critic.safetensors")
        # The store must match the checkpoint before the sampler reads its history.
        store.truncate_after(run.start_iteration)
        logger.truncate_after(run.start_iteration)
        try:
            sampler.load_state_dict(state["sampler"])
        except (ValueError, KeyError) as e:  # another curriculum, or another train split, than the checkpoint's
            raise ConfigError(f"checkpoint {path} cannot resume with this config: {e}; use the checkpoint's "
                              "curriculum and data, or another run_name=... for a new run") from e
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        run.state = state["history"]
        logger.print(f"Resuming {run_dir} from {path.name} (iteration {run.start_iteration})")
    else:
        store.truncate_after(-1)  # a run killed before its first checkpoint starts its store afresh
        logger.truncate_after(-1)  # ... and its metrics
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
    # The engine starts from exactly the learner's weights, whatever it held before (0.02 s on CPU).
    engine.sync_weights(learner.named_weights(), learner.version)
    roller.version = learner.version
    if found and cfg.trainer.async_level and (found[0] / checkpoint.BEHAVIOUR).is_file():
        # One step off, the batch in flight at the checkpoint was sampled one update behind: regenerate it
        # under those weights (the producer pushes the learner's once it is made, trainer/produce.py).
        from safetensors.torch import load_file

        engine.sync_weights(load_file(str(found[0] / checkpoint.BEHAVIOUR)).items(), found[1]["behaviour"]["version"])
        roller.version, run.weights_iteration = found[1]["behaviour"]["version"], found[1]["behaviour"]["iteration"]
    return run


def learner_state(learner):
    """The learner's sharded models and optimizers as one DCP state (rlreason/distributed/checkpoint.py)."""
    from rlreason.distributed.checkpoint import LearnerState

    models = {"policy": learner.policy} | ({"critic": learner.critic} if learner.critic is not None else {})
    optimizers = [o for o in (learner.optimizer, getattr(learner, "critic_optimizer", None)) if o is not None]
    return LearnerState(models, optimizers, trainable_only=learner.lora)  # LoRA: the adapters, not the base


def save_checkpoint(run: Run, iteration: int, sampler_state: dict | None = None, behaviour: dict | None = None
                    ) -> Path:
    """`sampler_state`: the sampler as it was after this iteration's selection (trainer.async_level=1 has
    already selected the next batch, which resume regenerates); None: the sampler's state now.
    `behaviour`: the weights that next batch was sampled with (one update behind the policy), kept so
    that resume regenerates exactly that batch."""
    keep = run.cfg.trainer.keep_checkpoints or 1_000_000  # null: keep every checkpoint
    learner = run.learner.state_dict()
    if run.dist.active:  # the optimizer state goes into the sharded DCP files, not rank 0's pickle
        learner = {k: v for k, v in learner.items() if "optimizer" not in k}
    state = {
        "iteration": iteration,
        "fingerprint": fingerprint(run.cfg),
        "learner": learner,
        "sampler": run.sampler.state_dict() if sampler_state is None else sampler_state,
        "python_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
        "history": run.state,
        "world_size": run.dist.world,
    }
    if behaviour is not None:
        state["behaviour"] = {k: v for k, v in behaviour.items() if k != "weights"}
    if run.dist.active:
        from rlreason.distributed import checkpoint as dist_checkpoint

        # LoRA: policy/ holds the adapter in peft's format too, as a single-process checkpoint's (export, eval)
        also = None if not run.learner.lora else (
            lambda tmp: lora.adapter_files(run.learner.policy, tmp / "policy", run.dist.main))
        return dist_checkpoint.save(run.run_dir / "checkpoints", iteration, learner_state(run.learner), state,
                                    run.dist, keep=keep, behaviour=None if behaviour is None else behaviour["weights"],
                                    also=also)
    return checkpoint.save(run.run_dir / "checkpoints", iteration, run.learner.policy, state, run.learner.critic,
                           keep=keep, behaviour=None if behaviour is None else behaviour["weights"])
