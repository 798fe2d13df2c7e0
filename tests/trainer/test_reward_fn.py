"""reward.fn through the whole loop on the real engine: components logged for training and eval, and a
function that fails on everything stops the run before any update."""

from __future__ import annotations

import json
import textwrap

import pytest

from rlreason.reward.meter import RewardFailed
from rlreason.trainer.loop import train

USER = textwrap.dedent('''
    def parts(response, record):
        lines = response.strip().splitlines()
        answer = lines[-1][4:].strip() if lines and lines[-1].startswith("####") else None
        return {"correct": float(answer == record["answer"]), "lines": min(len(lines), 10) / 10}

    def broken(response, record):
        return record["no_such_field"]
''')


@pytest.fixture
def user(tmp_path):
    path = tmp_path / "user_reward.py"
    path.write_text(USER)
    return path


@pytest.mark.vllm
def test_components_are_logged_for_training_and_eval(make_cfg, vllm_engine, tmp_path, user):
    cfg = make_cfg("algo=grpo", "trainer.iterations=2", f"reward.fn={user}:parts", "reward.weights.lines=0.5")
    s = json.loads(train(cfg, tmp_path / "run", engine=vllm_engine).read_text())
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "train/reward" in r]
    assert [r["iteration"] for r in trained] == [1, 2]
    for r in trained:
        # the reward is the weighted sum of the components' means; success is `correct`, not the total
        assert r["train/reward"] == pytest.approx(r["reward/correct"] + 0.5 * r["reward/lines"])
        assert r["train/success"] == pytest.approx(r["reward/correct"])
        assert r["reward/error"] == 0 and r["reward/timeout"] == 0
    evals = [r for r in rows if "eval/accuracy" in r]
    assert {"eval/reward/correct", "eval/reward/lines"} <= set(evals[-1])
    assert evals[-1][f"eval/mean@{cfg.trainer.eval_samples}"] == pytest.approx(evals[-1]["eval/reward/correct"])
    assert s["iterations"] == 2


@pytest.mark.vllm
def test_a_function_failing_on_everything_stops_the_run_before_an_update(make_cfg, vllm_engine, tmp_path, user):
    cfg = make_cfg("algo=grpo", "trainer.iterations=2", f"reward.fn={user}:broken")
    with pytest.raises(RewardFailed) as info:
        train(cfg, tmp_path / "run", engine=vllm_engine)
    assert "KeyError: 'no_such_field'" in str(info.value) and "iteration 1's rollouts" in str(info.value)
    assert not (tmp_path / "run" / "checkpoints" / "latest").exists()


def test_eval_line_names_held_out_components_apart_from_the_train_reward():
    from rlreason.trainer.loop import reward_line

    line = reward_line({"train/reward": 0.27, "eval/reward/correct": 0.17, "eval/reward/format": 0.99,
                        "reward/timeout": 0.0, "reward/error": 2.0})
    assert line == "train reward 0.27; held-out reward/correct 0.17, reward/format 0.99; reward/error 2"
    assert reward_line({"train/reward": 0.5}) == "train reward 0.50"
