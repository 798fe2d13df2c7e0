"""model=hf: any model dir or hub id, named after its path, with no tiny-model build block."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from rlreason.config import ConfigError, model_name, register_configs, validate
from rlreason.model.tiny import ASSETS
from tests.trainer.conftest import CONF


@pytest.mark.parametrize(("path", "name"), [
    ("rlreason/model/assets/tiny-arith", "tiny-arith"),
    ("/models/my-llama/", "my-llama"),
    ("realtreetune/rho-1b-sft-MATH", "rho-1b-sft-MATH"),
    ("gpt2", "gpt2"),
    ("outputs/grpo-run/checkpoints/iter_000040", "grpo-run-iter_000040"),
    ("outputs/grpo-run/checkpoints/iter_000040/policy", "grpo-run-iter_000040"),
])
def test_name_from_path(path, name):
    assert model_name(path) == name


def compose_cfg(*overrides: str, config: str = "config"):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose(config, overrides=list(overrides))


@pytest.mark.parametrize("config", ["config", "eval"])
def test_run_name_and_no_build_block(config):
    cfg = compose_cfg("model=hf", f"model.path={ASSETS}/", config=config)
    assert cfg.model.name == "tiny-arith" and cfg.model.build == {} and cfg.model.tokenizer is None
    assert cfg.model.max_model_len is None  # the model's own context, read from its config at start-up
    if config == "config":
        validate(cfg)
        assert cfg.run_name == "vineppo-arith-tiny-arith-uniform-s0"
        assert compose_cfg("model=hf", "model.path=org/some-model", "model.name=mine").run_name == \
            "vineppo-arith-mine-uniform-s0"


def test_tiny_build_block_never_describes_another_model():
    with pytest.raises(ConfigError, match="use model=hf model.path=..."):
        validate(compose_cfg(f"model.path={ASSETS}"))


def test_context_length_from_the_model(tmp_path):
    from rlreason.trainer.build import context_length

    cfg = compose_cfg("model=hf", f"model.path={ASSETS}")
    assert context_length(cfg, str(ASSETS)) == 256  # the tiny model's max_position_embeddings
    cfg.model.max_model_len = 128
    assert context_length(cfg, str(ASSETS)) == 128
