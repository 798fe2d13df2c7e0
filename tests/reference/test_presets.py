"""Each conf/ option with what it changes relative to the schema's defaults."""

from __future__ import annotations

from rlreason.reference.presets import CONF, groups, option, run_defaults


def test_every_group_and_option_under_conf_is_listed_and_says_what_it_is():
    found = groups()
    on_disk = {p.parent.relative_to(CONF).as_posix() for p in CONF.rglob("*/*.yaml")}
    assert set(found) == on_disk and {"algo", "data", "recipe", "experiment", "hydra/launcher"} <= on_disk
    silent = [o.path for opts in found.values() for o in opts if not o.about]
    assert not silent, ("options without a description (docs/reference/config.md shows each option's opening "
                        "comment): add a comment at the top of each of " + ", ".join(silent)
                        + " saying what it is, then run `python -m rlreason.reference`")


def test_an_option_changes_only_what_differs_from_the_schema():
    ppo = dict(option("algo", "ppo").changes)
    assert ppo == {"algo.name": '"ppo"', "algo.kl_reduction": '"sequence_sum"', "algo.whiten_advantages": "true"}
    # conf/engine/vllm.yaml restates transfer_timeout_s: 120 (an int in YAML, 120.0 in the schema): no change
    assert dict(option("engine", "vllm").changes) == {"engine.name": '"vllm"'}


def test_global_options_and_defaults_lists():
    countdown = dict(option("data", "countdown").changes)  # @package _global_: reaches into reward
    assert countdown["reward.fn"] == '"rlreason.reward.countdown:countdown_reward"'
    assert countdown["reward.weights"] == '{"format": 0.0}'
    gsm8k = option("experiment", "gsm8k_qwen05b")
    assert gsm8k.includes == ("recipe/paper",) and gsm8k.selects == ("data=gsm8k", "model=hf")
    assert dict(gsm8k.changes)["rollout.max_new_tokens"] == "512"
    assert option("recipe", "tiny").includes == ("recipe/tiny_cpu",)
    sweep = dict(option("experiment", "sweep").changes)
    assert sweep["trainer.keep_checkpoints"] == "null" and "hydra.sweep.dir" in sweep
    assert "algo=vineppo" in run_defaults() and run_defaults()[-1] == "experiment=null"
