"""data=reasoning_gym (rlreason/data/reasoning_gym.py): seeded, disjoint splits of reasoning-gym's tasks, JSON-able
records, and its config errors caught before compute with one `rlreason:`-style line each."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("reasoning_gym")

from omegaconf import OmegaConf  # noqa: E402

from rlreason.config import ConfigError, DataConfig  # noqa: E402
from rlreason.data import DataError, load_questions, load_split  # noqa: E402
from rlreason.data.reasoning_gym import task_problems  # noqa: E402
from rlreason.validate import validate  # noqa: E402
from tests.data.test_loaders import ROOT  # noqa: E402
from tests.data.test_records import compose_cfg  # noqa: E402


def rg_cfg(tasks: list[dict], **overrides):
    """conf/data/reasoning_gym.yaml's data node (the file is a global package), as Hydra hands it over."""
    own = OmegaConf.load(ROOT / "conf" / "data" / "reasoning_gym.yaml").data
    cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), own)
    for key, value in {"reasoning_gym.tasks": tasks, **overrides}.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def test_default_mix_splits_are_disjoint_seeded_and_json_able():
    cfg = rg_cfg([{"name": "chain_sum", "n_train": 300, "n_test": 60},
                  {"name": "gcd", "n_train": 200, "n_test": 40, "config": {"max_value": 50}}])
    train, test = load_questions(cfg)
    assert {q.problem for q in train}.isdisjoint({q.problem for q in test})
    assert len({q.id for q in train + test}) == len(train) + len(test)  # ids unique: the stats store keys on them
    assert 0 < len(train) <= 500 and 0 < len(test) <= 100
    again_train, again_test = load_questions(cfg)
    assert [q.id for q in again_train] == [q.id for q in train] and [q.id for q in again_test] == [q.id for q in test]
    other, _ = load_questions(rg_cfg(list(cfg.reasoning_gym.tasks), **{"reasoning_gym.seed": 1}))
    assert [q.id for q in other] != [q.id for q in train]
    q = test[-1]
    assert q.meta["subject"] == "gcd" and q.source == "reasoning_gym"
    assert json.loads(json.dumps(q.record)) == q.record
    assert q.record["reasoning_gym"] == {"task": "gcd", "config": {"max_value": 50}, "seed": 200, "size": 40,
                                         "index": 39}
    assert load_split(cfg, "test") == test


def test_a_small_question_space_is_deduplicated_across_splits():
    # gcd of two numbers up to 20: with seed 0 the 40 train items hold 36 distinct questions, the test
    # split's 40 items 38, 3 of them train questions. The seeds alone do not keep the splits apart.
    cfg = rg_cfg([{"name": "gcd", "n_train": 40, "n_test": 40, "config": {"min_value": 1, "max_value": 20}}])
    train, test = load_questions(cfg)
    assert {q.problem for q in train}.isdisjoint({q.problem for q in test})
    assert (len(train), len(test)) == (36, 35)
    tiny = rg_cfg([{"name": "gcd", "n_train": 40, "n_test": 3, "config": {"min_value": 1, "max_value": 2}}])
    with pytest.raises(DataError, match="gcd generated no test question that is not already in the train split"):
        load_questions(tiny)


@pytest.mark.parametrize("tasks,message", [
    ([{"name": "chain_summ"}], r"tasks\[0\].name='chain_summ' is not one of reasoning-gym's datasets \(did you mean chain_sum\?\)"),
    ([{"name": "gcd", "config": {"max_valu": 9}}], r"tasks\[0\].config.max_valu: gcd's config has no such field \(did you mean max_value\?\)"),
    ([{"name": "gcd", "config": {"min_value": 10, "max_value": 2}}], r"tasks\[0\].config: gcd rejects"),
    ([{"name": "gcd", "config": {"seed": 3}}], r"config sets seed: rlreason sets them"),
    ([{"name": "gcd", "n_test": 0}], r"n_test=0 must be >= 1"),
    ([{"name": "spiral_matrix"}], r"spiral_matrix\): its scorer runs the model's answer through eval; set "
                                  r"data.reasoning_gym.allow_eval=true"),
    ([], r"data.reasoning_gym.tasks is empty"),
])
def test_bad_tasks_are_refused_before_compute(tasks, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate(compose_cfg("data=reasoning_gym", "model=tiny_chat", f"data.reasoning_gym.tasks={_hydra(tasks)}"))
    assert "\n" not in str(e.value)  # one line


def test_allow_eval_lets_such_a_task_through():
    assert task_problems(rg_cfg([{"name": "spiral_matrix"}]).reasoning_gym.tasks, allow_eval=True) == []


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # what an environment without it imports
    monkeypatch.setitem(sys.modules, "reasoning_gym.factory", None)
    (problem,) = task_problems(rg_cfg([{"name": "gcd"}]).reasoning_gym.tasks, allow_eval=False)
    assert "data=reasoning_gym needs the reasoning-gym package" in problem
    assert "pip install 'rlreason[reasoning-gym]'" in problem
    with pytest.raises(DataError, match=r"rlreason\[reasoning-gym\]"):
        load_questions(rg_cfg([{"name": "gcd"}]))


def test_source_and_reward_fn_are_its_own():
    with pytest.raises(ConfigError, match="data=reasoning_gym is generated by reasoning-gym: set data.source=generated"):
        validate(compose_cfg("data=reasoning_gym", "model=tiny_chat", "data.source=local"))
    with pytest.raises(ConfigError, match="set reward.fn=rlreason.reward.reasoning_gym:score"):
        validate(compose_cfg("data=reasoning_gym", "model=tiny_chat", "reward.fn=null"))


def _hydra(tasks: list[dict]) -> str:
    """A list of task dicts as a Hydra override value."""
    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {value(x)}" for k, x in v.items()) + "}"
        return str(v)

    return "[" + ", ".join(value(t) for t in tasks) + "]"


def test_eval_composes_it_and_the_documented_stop_override_parses():
    from hydra import compose, initialize_config_dir

    from rlreason.config import register_configs
    from rlreason.validate import validate_eval
    from tests.trainer.conftest import CONF

    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        validate_eval(compose("eval", overrides=["data=reasoning_gym", "model=tiny_chat"]))
    cfg = compose_cfg("data=reasoning_gym", "model=tiny_chat", 'rollout.stop=["</answer>"]')
    assert list(cfg.rollout.stop) == ["</answer>"]
