"""Compose real configs (the same YAML tree `python -m rlreason.run` uses) for in-process runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlreason.config import register_configs
from rlreason.validate import validate

CONF = str(Path(__file__).resolve().parents[2] / "conf")

# Small enough for a 2-core CI machine, big enough that every phase does real work.
SMALL = [
    "trainer.questions_per_iteration=4", "rollout.samples_per_question=4", "learner.minibatch_size=8",
    "learner.micro_batch_size=8", "trainer.eval_max_questions=8", "trainer.eval_samples=2",
    "trainer.eval_every=2", "trainer.checkpoint_every=1", "algo.mc_rollouts=2", "trainer.progress=false",
    "rollout.max_new_tokens=64",
]


@pytest.fixture(scope="session")
def make_cfg(tmp_path_factory):
    register_configs()
    cache = tmp_path_factory.mktemp("cache")

    def make(*overrides: str):
        with initialize_config_dir(config_dir=CONF, version_base=None):
            cfg = compose("config", overrides=[*SMALL, f"cache_dir={cache}", *overrides])
        validate(cfg)
        return cfg

    return make
