"""`python -m rlreason.describe KEY`: a key's, a group's or a metric's description from the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlreason.describe import describe_key, main

ROOT = Path(__file__).resolve().parents[1]


def test_a_key_prints_type_default_and_meaning():
    text = describe_key("algo.clip_eps")
    assert text.startswith("algo.clip_eps: float = 0.2\n")
    assert "PPO's clip" in text and "rlreason/config/__init__.py:" in text


def test_a_group_lists_its_options_and_keys():
    text = describe_key("algo")
    assert "Options (algo=NAME, conf/algo/):" in text and "  ppo: PPO baseline" in text
    assert "algo.kl_reduction=\"sequence_sum\"" in text
    assert "  algo.mc.tree: bool = false" in text
    assert "  learner.lora.r: int = 0" in describe_key("learner.lora")
    recipe = describe_key("recipe")  # a group of conf/ with no schema node of its own
    assert recipe.startswith("Options (recipe=NAME, conf/recipe/):") and "  tiny_cpu: The sizes" in recipe


def test_an_eval_key_and_metrics():
    assert describe_key("eval.n").startswith("eval.n: int = 4")
    assert describe_key("mc/dedup_ratio").startswith("mc/dedup_ratio (ratio)")
    assert describe_key("eval/mean@16").startswith("eval/mean@{n} (fraction)")
    assert "mc/unique_states (count)" in describe_key("mc/")


def test_an_unknown_key_gets_a_suggestion(capsys):
    with pytest.raises(KeyError, match=r"unknown config key algo\.clip \(did you mean algo\.clip_eps\?\)"):
        describe_key("algo.clip")
    assert main(["algo.clip"]) == 2
    assert capsys.readouterr().err.startswith("rlreason: unknown config key algo.clip (did you mean algo.clip_eps?)")
    assert main(["mc/dedup_ratios"]) == 2
    assert "did you mean mc/dedup_ratio?" in capsys.readouterr().err


def test_no_argument_lists_the_groups(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "  algo: algo=NAME (conf/algo/)" in out and "  seed: int = 0" in out


def test_run_help_names_describe():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "rlreason.run", "--help"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "algo: grpo, ppo, rloo, vineppo" in out.stdout  # Hydra's own list of groups stays
    assert "python -m rlreason.describe algo.clip_eps" in out.stdout
