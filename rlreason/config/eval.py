"""The schema of `python -m rlreason.eval` (conf/eval.yaml). Re-exported by rlreason.config."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

# rlreason.config imports this module once these classes exist (after their definitions)
from rlreason.config import DataConfig, EngineConfig, ModelConfig, RewardConfig
from rlreason.config.env import EnvConfig


@dataclass
class EvalOptions:
    """`python -m rlreason.eval`'s own settings (rlreason/eval.py)."""

    n: int = 4  # samples per question at `temperature`: mean@n, maj@n, pass@n (0: greedy only)
    temperature: float = 0.35  # temperature of the n samples
    top_p: float = 1.0  # nucleus of the n samples (1.0: off)
    greedy: bool = True  # also decode greedily (the headline accuracy, as in training's evals)
    # None: a run dir's own rollout.max_new_tokens (so the numbers match its evals), else what
    # model.max_model_len leaves after the longest prompt.
    max_new_tokens: int | None = None
    split: str = "test"  # test | train
    max_questions: int | None = None  # the first N questions of the split (None = all)
    batch_questions: int = 64  # questions per engine call (one step of the progress bar)
    progress: bool = True  # a progress bar on the terminal


@dataclass
class EvalConfig:
    """`python -m rlreason.eval` (conf/eval.yaml): the data, model, engine and reward nodes of training."""

    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    engine: EngineConfig = MISSING
    reward: RewardConfig = field(default_factory=RewardConfig)
    env: EnvConfig = field(default_factory=EnvConfig)  # multi-turn environments (rlreason/envs/)
    eval: EvalOptions = field(default_factory=EvalOptions)
    seed: int = 0  # seeds the eval's sampling
    device: str = "auto"  # auto | cpu | cuda
    cache_dir: str = "${oc.env:RLREASON_CACHE,'~/.cache/rlreason'}"  # tiny models built at run time
