"""The presets this issue set from the reference configs, and their config checks."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf.errors import InterpolationResolutionError

from rlreason.config import ConfigError, register_configs
from rlreason.trainer.evaluate import evaluate
from rlreason.validate import validate
from tests.trainer.conftest import CONF


def compose_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("data, iterations", [("math", 1000), ("gsm8k", 650)])
def test_paper_preset_follows_the_reference_per_task(data, iterations):
    cfg = compose_cfg("experiment=paper", f"data={data}", "model=deepseekmath7b_sft_math")
    validate(cfg)
    assert cfg.trainer.iterations == iterations
    assert list(cfg.rollout.stop) == ["\n\n\nProblem:"]
    t = cfg.trainer
    assert (t.eval_samples, t.eval_temperature, t.eval_top_p, t.eval_headline) == (16, 0.35, 0.9, "mean")
    assert cfg.model.max_model_len == 4096
    assert cfg.data.steps.rule == ("vineppo" if data == "math" else "lines")
    assert cfg.data.steps.max_value_steps == (None if data == "math" else 25)


def test_paper_preset_has_no_iterations_for_arith():
    cfg = compose_cfg("experiment=paper")
    with pytest.raises(InterpolationResolutionError, match="no value for data=arith"):
        _ = cfg.trainer.iterations


@pytest.mark.parametrize("override, message", [
    ("data.steps.rule=words", "data.steps.rule"),
    ("data.steps.max_value_steps=-1", "max_value_steps"),
    ("+rollout.stop=['']", "empty string"),
    ("trainer.eval_top_p=0", "eval_top_p"),
    ("trainer.eval_headline=best", "eval_headline"),
    ("curriculum=sfl curriculum.buffer_size=2000", "buffer_size"),
    ("curriculum=sfl curriculum.buffer_frac=1.5", "buffer_frac"),
    ("curriculum=learnability_history curriculum.cooldown=-1", "cooldown"),
])
def test_bad_values_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg(*override.split()))


class FakeRoller:
    def __init__(self):
        self.calls = []

    def __call__(self, questions, n, temperature=None, top_p=None, phase="rollout"):
        from tests.curriculum.fakes import episode
        self.calls.append((n, temperature, top_p))
        # sampled: 1 of n right; greedy: right
        return [[episode(q, float(j == 0 or temperature == 0)) for j in range(n)] for q in questions]


@pytest.mark.parametrize("headline, expected", [("greedy", 1.0), ("mean", 0.25)])
def test_eval_headline_and_top_p(headline, expected):
    from tests.curriculum.fakes import questions
    roller = FakeRoller()
    m, _, _ = evaluate(roller, questions(3), 4, 0.35, True, top_p=0.9, headline_metric=headline)
    assert m["eval/accuracy"] == expected and m["eval/greedy"] == 1.0 and m["eval/mean@4"] == 0.25
    assert roller.calls[0] == (4, 0.35, 0.9)


@pytest.mark.parametrize("preset, model, micro", [("rho1b_math_vineppo", "realtreetune/rho-1b-sft-MATH", 8),
                                                  ("deepseek7b_math_vineppo", "realtreetune/deepseekmath-7b-sft-MATH-v2", 4)])
def test_scale_presets_are_the_paper_run_on_the_public_sft_checkpoints(preset, model, micro, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")  # as under torchrun --nproc-per-node=8
    cfg = compose_cfg(f"experiment={preset}")
    validate(cfg)
    assert (cfg.model.path, cfg.data.name, cfg.algo.name) == (model, "math", "vineppo")
    assert (cfg.algo.mc_rollouts, cfg.algo.kl_coef, cfg.learner.lr) == (9, 1e-4, 1e-6)
    assert cfg.trainer.questions_per_iteration * cfg.rollout.samples_per_question == 512
    assert cfg.learner.micro_batch_size == micro and cfg.engine.sleep_mode
    assert cfg.run_name == f"{preset}-s0-w8"  # a sharded run keeps its own run dir
    monkeypatch.delenv("WORLD_SIZE")
    assert compose_cfg(f"experiment={preset}").run_name == f"{preset}-s0"


@pytest.mark.parametrize("preset, data", [("paper", "math"), ("paper", "gsm8k"), ("rho1b_math_vineppo", "math"),
                                          ("deepseek7b_math_vineppo", "math")])
def test_paper_presets_run_vineppo_at_the_papers_k(preset, data):
    # the tiny model's CPU sizes (K = 4, recipe/tiny_cpu) come after algo/vineppo.yaml (K = 9) in the
    # defaults list: a preset that did not set K itself would run the paper at K = 4
    assert compose_cfg("algo=vineppo").algo.mc_rollouts == 4
    cfg = compose_cfg(f"experiment={preset}", "algo=vineppo", f"data={data}", "model=deepseekmath7b_sft_math")
    validate(cfg)
    assert cfg.algo.mc_rollouts == 9
    # and the reference's LR schedule and question sampling (rlreason/learner/schedule.py, curriculum/order.py)
    assert (cfg.learner.warmup, cfg.learner.schedule, cfg.learner.warmup_ratio) == ("log", "linear", 0.03)
    assert cfg.curriculum.with_replacement is True


def test_defaults_keep_linear_warmup_and_epochs():
    cfg = compose_cfg()
    assert cfg.learner.warmup == "linear" and cfg.curriculum.with_replacement is False


def test_log_warmup_with_cosine_is_a_config_error():
    with pytest.raises(ConfigError, match="learner.warmup=log"):
        validate(compose_cfg("learner.warmup=log", "learner.schedule=cosine"))
    with pytest.raises(ConfigError, match="learner.warmup='exp'"):
        validate(compose_cfg("learner.warmup=exp"))


PAPER_SIZES = {"algo.mc_rollouts": 9, "rollout.max_new_tokens": 1024, "learner.lr": 1e-6, "learner.epochs": 2,
               "trainer.questions_per_iteration": 64, "trainer.eval_max_questions": None,
               "engine.gpu_memory_utilization": 0.4, "engine.sleep_mode": True}


@pytest.mark.parametrize("model, data", [("rho1b_sft_math", "math"), ("rho1b_sft_gsm8k", "gsm8k"),
                                         ("deepseekmath7b_sft_math", "math"), ("deepseekmath7b_sft_gsm8k", "gsm8k")])
def test_the_papers_checkpoints_bring_the_papers_sizes_without_a_preset(model, data):
    """The headline command with a paper checkpoint, no experiment=: the sizes the paper trained it at, not the
    tiny model's (80-token responses would cut nearly every MATH solution)."""
    from omegaconf import OmegaConf

    cfg = compose_cfg("algo=vineppo", f"data={data}", "curriculum=learnability", f"model={model}")
    validate(cfg)
    assert {k: OmegaConf.select(cfg, k) for k in PAPER_SIZES} == PAPER_SIZES
    assert cfg.trainer.iterations == {"math": 1000, "gsm8k": 650}[data]
    # the same as experiment=paper, and the command line still wins over both
    assert compose_cfg("algo=vineppo", f"data={data}", "curriculum=learnability", f"model={model}",
                       "experiment=paper") == cfg
    assert compose_cfg(f"data={data}", f"model={model}", "rollout.max_new_tokens=512").rollout.max_new_tokens == 512


@pytest.mark.parametrize("model", ["tiny", "tiny_countdown", "hf model.path=/m"])
def test_the_tiny_models_and_a_users_model_keep_the_cpu_sizes(model):
    cfg = compose_cfg(*f"model={model}".split())
    assert (cfg.rollout.max_new_tokens, cfg.learner.lr, cfg.algo.mc_rollouts, cfg.trainer.iterations) == (80, 3e-5, 4, 80)


def test_every_model_preset_has_its_recipe_and_eval_composes_without_one():
    """conf/recipe/MODEL.yaml for each model option (a missing one would silently fall back to rlreason/config/'s
    defaults); the eval (conf/eval.yaml) composes the same model options without any recipe."""
    from hydra import compose, initialize_config_dir

    from tests.trainer.conftest import CONF

    register_configs()
    models = sorted(p.stem for p in (Path(CONF) / "model").glob("*.yaml"))
    assert sorted(p.stem for p in (Path(CONF) / "recipe").glob("*.yaml")) == sorted([*models, "paper", "tiny_cpu"])
    with initialize_config_dir(config_dir=CONF, version_base=None):
        for m in models:
            assert compose("eval", overrides=[f"model={m}", "model.path=/m"]).model.name
    assert compose_cfg("model=hf", "model.path=/m", "recipe=paper").rollout.max_new_tokens == 1024


@pytest.mark.parametrize("recipe, data, budget", [("gsm8k_qwen05b", "gsm8k", 512), ("math_qwen15b", "math", 1024),
                                                  ("countdown_qwen15b", "countdown", 1024)])
def test_one_gpu_recipes(recipe, data, budget):
    """An instruct model with its chat template, the response budget of the source the recipe cites, stopping at
    the model's end of turn (no few-shot stop string), for every algorithm."""
    for algo in ("vineppo", "ppo", "grpo", "rloo"):
        cfg = compose_cfg(f"experiment={recipe}", f"algo={algo}")
        validate(cfg)
        assert cfg.data.name == data and cfg.model.path.startswith("Qwen/Qwen2.5-")
        assert cfg.data.use_chat_template and "{problem}" in cfg.data.user_template
        assert cfg.rollout.max_new_tokens == budget and list(cfg.rollout.stop) == []
        assert cfg.rollout.max_new_tokens < cfg.model.max_model_len
        assert cfg.learner.lr == 1e-6 and cfg.run_name.startswith(f"{recipe}-{algo}-")


def test_the_gpu_check_runs_each_recipe():
    import sys

    from tests.trainer.conftest import CONF

    sys.path.insert(0, str(Path(CONF).parent / "scripts"))
    from gpu_loop import RECIPES

    assert sorted(ov[0] for ov in RECIPES.values()) == sorted(
        f"experiment={p.stem}" for p in (Path(CONF) / "experiment").glob("*_qwen*.yaml"))
