"""A builtin tiny model's SFT questions are never held out: at the build's data settings the test split
is as it was, at others (n_test=1000: 485 of 1000 were SFT instances) they are left out, and a test split
of nothing but SFT questions is refused before any compute, in training and in eval."""

from __future__ import annotations

import json

import pytest

from rlreason.data import DataError, load_questions, load_split
from rlreason.data.countdown import CountdownSpec, generate_splits
from rlreason.model.heldout import _sft_keys, held_out_filter
from rlreason.model.tasks import countdown_key
from rlreason.model.tiny import default_build
from tests.model.test_hf import compose_cfg

BUILD = default_build("countdown")


def sft_set() -> frozenset:
    return _sft_keys("countdown", BUILD["n_train"], BUILD["n_test"], BUILD["data_seed"])  # cached, as the filter's


def overlap(questions) -> int:
    return sum(countdown_key(q.record) in sft_set() for q in questions)


def splits(*overrides: str):
    cfg = compose_cfg(*overrides)
    return cfg, held_out_filter(cfg.model, cfg.data.name)


def test_the_sft_set_is_the_builds_train_split():
    train, test = generate_splits(BUILD["n_train"], BUILD["n_test"], CountdownSpec(), BUILD["data_seed"])
    assert sft_set() == frozenset(map(countdown_key, train)) and len(sft_set()) == 20000
    assert not sft_set() & set(map(countdown_key, test))


def test_at_the_builds_settings_the_held_out_split_is_unchanged_and_train_is_the_sft_set():
    cfg, cut = splits("data=countdown", "model=tiny_countdown")
    plain_train, plain_test = load_questions(cfg.data, needs_answer=False)
    train, test = load_questions(cfg.data, needs_answer=False, held_out=cut)
    assert [q.id for q in test] == [q.id for q in plain_test] and len(test) == 500
    assert overlap(test) == 0
    # RL's train split is left as it is: at the defaults it is the SFT set, trained on again
    assert [q.id for q in train] == [q.id for q in plain_train] and overlap(train) == len(train) == 20000


def test_a_larger_n_test_no_longer_holds_out_sft_questions(capsys):
    # n_train=10: the test split is drawn first, so RL's train size does not change it (and it is cheap)
    cfg, cut = splits("data=countdown", "model=tiny_countdown", "data.countdown.n_test=1000",
                      "data.countdown.n_train=10")
    _, plain = load_questions(cfg.data, needs_answer=False)
    assert overlap(plain) == 485  # the stream ran on into the build's SFT instances
    _, test = load_questions(cfg.data, needs_answer=False, held_out=cut)
    assert overlap(test) == 0 and len(test) == 515
    assert [q.id for q in test[:500]] == [q.id for q in plain[:500]]  # the build's test split, all kept
    assert "left 485 of the 1000 test questions out" in capsys.readouterr().err
    # max_test cuts the held-out split, not the one with SFT questions in it
    cfg.data.max_test = 510
    assert len(load_split(cfg.data, "test", needs_answer=False, held_out=cut)) == 510


def test_no_filter_for_other_models_or_data():
    assert splits("data=countdown", "model=hf", "model.path=org/some-model")[1] is None
    assert splits("data=gsm8k", "model=tiny_countdown")[1] is None
    assert splits("data=arith", "model=tiny")[1] is None  # not cut: rlreason/model/heldout.py says why


def sft_rows_file(tmp_path, n: int = 6):
    train, _ = generate_splits(n, BUILD["n_test"], CountdownSpec(), BUILD["data_seed"])
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train))
    return path


def local(path):
    return ["data=countdown", "model=tiny_countdown", "data.source=local", f"data.train_path={path}",
            f"data.test_path={path}"]


def test_a_test_file_of_sft_questions_is_refused_in_training(tmp_path, monkeypatch):
    import rlreason.engine
    from tests.test_errors import build_error

    def heavy(*args, **kwargs):
        raise AssertionError("heavy work started before the input was checked")

    monkeypatch.setattr(rlreason.engine, "make_engine", heavy)
    err = build_error(tmp_path, *local(sft_rows_file(tmp_path)))
    assert isinstance(err, DataError)
    assert "all 6 test questions of data=countdown are ones model=tiny_countdown was fine-tuned on" in str(err)
    assert "model.build.n_train=20000, model.build.n_test=500, model.build.data_seed=0" in str(err)


def test_a_test_file_of_sft_questions_is_refused_in_eval(tmp_path):
    from hydra import compose, initialize_config_dir

    from rlreason.config import register_configs
    from rlreason.eval import evaluate_model
    from tests.trainer.conftest import CONF

    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("eval", overrides=[*local(sft_rows_file(tmp_path)), "engine=hf"])
    with pytest.raises(DataError, match="all 6 test questions of data=countdown are ones model=tiny_countdown"):
        evaluate_model(cfg, tmp_path / "out")
