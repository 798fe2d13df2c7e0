"""The curriculum counts successes, not rewards: with a reward function's partial credit (rewards that
are not 0/1) p-hat is still the share of solved attempts. Stores written before the success column
(schema 1, every reward 0/1) are upgraded in place."""

from __future__ import annotations

import sqlite3

from rlreason.curriculum import StatsStore, attempts_from_groups
from rlreason.curriculum.samplers import group_metrics
from rlreason.rollout import Episode
from rlreason.trainer.evaluate import score_groups
from tests.curriculum.fakes import questions


def episode(q, reward: float, reason: str) -> Episode:
    return Episode(q, [0], [1, 2], [0.0, 0.0], "", "stop", reward, reason)


def partial_credit_group(q):
    # a wrong answer with format credit (0.1), a right one (1.1): mean reward 0.6, success rate 0.5
    return [episode(q, 0.1, "wrong"), episode(q, 1.1, "correct")]


def test_success_not_reward_in_metrics_and_scores():
    (q,) = questions(1)
    group = partial_credit_group(q)
    assert group_metrics([group], "c")["c/learnability"] == 0.25  # p = 0.5, not the mean reward 0.6
    assert group_metrics([group], "c")["c/hit_1_of_2"] == 1.0
    assert score_groups([group]) == {"mean": 0.5, "maj": 0.0, "pass": 1.0}


def test_store_keeps_reward_and_success(tmp_path):
    (q,) = questions(1)
    with StatsStore(tmp_path / "s.sqlite", "run") as store:
        store.add(attempts_from_groups([partial_credit_group(q)], 1, "train"))
        store.commit(1)
        assert store.p_hat(1) == {q.id: 0.5}
        assert store.solve_fractions("train")[0].all_solved == 0.0
        rewards = sorted(r for (r,) in store.con.execute("SELECT reward FROM attempts"))
    assert rewards == [0.1, 1.1]


def test_schema_1_store_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE attempts (question TEXT NOT NULL, iteration INTEGER NOT NULL, phase TEXT NOT NULL,
            reward REAL NOT NULL, length INTEGER NOT NULL, policy_version INTEGER NOT NULL);
        CREATE TABLE selections (iteration INTEGER NOT NULL, question TEXT NOT NULL, selected INTEGER NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('run_id', 'run'), ('last_committed', '1');
        INSERT INTO attempts VALUES ('q', 1, 'train', 1.0, 3, 1), ('q', 1, 'train', 0.0, 3, 1),
                                    ('q', 1, 'train', 1.0, 3, 1), ('q', 1, 'train', 1.0, 3, 1);
    """)
    con.commit()
    con.close()
    with StatsStore(path, None, readonly=True) as store:  # read-only: read as it is, success = the reward
        assert store.p_hat(1) == {"q": 0.75}
    with StatsStore(path, "run") as store:  # writable: upgraded once, the history intact
        assert store.p_hat(1) == {"q": 0.75}
        (q,) = questions(1)
        store.add(attempts_from_groups([partial_credit_group(q)], 2, "train"))
        store.commit(2)
        assert store.p_hat(2)[q.id] == 0.5
    with StatsStore(path, "run") as store:
        assert store.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
