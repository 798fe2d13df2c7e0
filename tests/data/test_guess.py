"""data=guess (rlreason/data/guess.py, its loader and checks): seeded, disjoint splits of hidden-number
games whose budget is binary search's worst case."""

from __future__ import annotations

import pytest

from rlreason.config import ConfigError
from rlreason.data import load_questions
from rlreason.data.guess import GuessSpec, budget, generate_splits, problem_text, record_error
from rlreason.envs.guess import GuessNumber
from rlreason.validate import validate
from tests.data.test_loaders import data_cfg
from tests.model.test_hf import compose_cfg


def test_budget_is_binary_searchs_worst_case() -> None:
    assert [budget(n) for n in (1, 2, 3, 7, 8, 15, 16, 31, 32, 50, 63, 64)] == [1, 2, 2, 3, 4, 4, 5, 5, 6, 6, 6, 7]
    assert budget(8, slack=1) == 5


def test_splits_are_seeded_disjoint_and_prefix_stable() -> None:
    train, test = generate_splits(3000, 500, seed=0)
    key = lambda r: (r["lo"], r["hi"], r["target"])  # noqa: E731
    assert len({key(r) for r in train} | {key(r) for r in test}) == 3500
    assert (train, test) == generate_splits(3000, 500, seed=0)
    assert generate_splits(100, 500, seed=0)[1] == test  # growing n_train never changes the test set
    assert generate_splits(3000, 500, seed=1)[1] != test
    spec = GuessSpec()
    for r in train + test:
        assert record_error(r) is None and 1 <= r["lo"] and r["hi"] <= spec.max_num
        assert spec.min_size <= r["hi"] - r["lo"] + 1 <= spec.max_size and r["turns"] == budget(r["hi"] - r["lo"] + 1)
    assert {r["turns"] for r in test} == {4, 5, 6}


def test_loader_makes_questions_the_environment_plays() -> None:
    train, test = load_questions(data_cfg("guess", **{"guess.n_train": 50, "guess.n_test": 20}))
    assert len(train) == 50 and len(test) == 20 and not {q.id for q in train} & {q.id for q in test}
    q = test[0]
    assert q.problem == problem_text(q.record) and q.level == q.record["turns"] and q.source == "guess"
    assert GuessNumber(q.row(), 0).step(f"guess {q.answer}\n").reward == {"correct": 1.0}


@pytest.mark.parametrize("overrides, match", [
    ({"guess.min_size": 60}, "min_size <= max_size"),
    ({"guess.max_num": 5000}, "max_num <= 999"),
    ({"guess.slack": -1}, "slack must be >= 0"),
])
def test_a_bad_spec_is_refused(overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        load_questions(data_cfg("guess", **overrides))


@pytest.mark.parametrize("overrides, match", [
    (("data=guess", "model=tiny"), "model=tiny cannot write the hidden-number game"),
    (("data=arith", "model=tiny_guess"), "model=tiny_guess is built for data=guess only"),
    (("data=guess", "model=tiny_guess", "data.source=local"), "data=guess is generated"),
])
def test_config_mismatches_stop_before_compute(overrides, match) -> None:
    with pytest.raises(ConfigError, match=match):
        validate(compose_cfg(*overrides))


def test_data_guess_without_its_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="data=guess is a multi-turn game: set env.cls=rlreason.envs.guess:GuessNumber"):
        validate(compose_cfg("data=guess", "model=tiny_guess"))
