"""End-to-end iterations through the real engines on the committed tiny model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from rlreason.trainer.loop import train


def _summary(path):
    return json.loads(path.read_text())


@pytest.mark.vllm
def test_vineppo_iteration_on_vllm(make_cfg, vllm_engine, tmp_path):
    cfg = make_cfg("algo=vineppo", "trainer.iterations=2")
    s = _summary(train(cfg, tmp_path, engine=vllm_engine))
    assert s["iterations"] == 2
    assert 0.0 <= s["start_accuracy"] <= 1.0 and 0.0 <= s["final_accuracy"] <= 1.0
    assert s["phase_seconds"]["mc"] > 0 and s["phase_seconds"]["learner"] > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train/reward" in r]
    assert [r["iteration"] for r in train_rows] == [1, 2]
    for r in train_rows:
        # every trajectory contributes s_0, and the N samples of a question share it
        assert r["mc/unique_states"] <= r["mc/states"]
        assert r["mc/dedup_ratio"] >= 1.0
        # the learner recomputes the engine's log-probs: a broken sync would show up here
        assert r["learner/logprob_mismatch"] < 1e-3
    assert (tmp_path / "checkpoints" / "latest").read_text() == "iter_000002"


@pytest.mark.vllm
@pytest.mark.parametrize("algo", ["ppo", "grpo", "rloo"])
def test_baselines_run_end_to_end_on_vllm(make_cfg, vllm_engine, tmp_path, algo):
    cfg = make_cfg(f"algo={algo}", "trainer.iterations=1", "trainer.eval_every=1")
    s = _summary(train(cfg, tmp_path, engine=vllm_engine))
    assert s["iterations"] == 1
    assert s["skipped_updates"] == 0
    if algo == "ppo":
        assert (tmp_path / "checkpoints" / "iter_000001" / "critic.safetensors").exists()


@pytest.mark.parametrize("engine_name", ["hf"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(make_cfg, tmp_path, engine_name):
    """4 iterations in one go == 2 iterations, stop, resume, 2 more (CPU, same seed)."""
    overrides = (f"engine={engine_name}", "algo=grpo", "trainer.eval_every=100")
    full, split = tmp_path / "full", tmp_path / "split"
    train(make_cfg(*overrides, "trainer.iterations=4"), full)
    train(make_cfg(*overrides, "trainer.iterations=2"), split)
    train(make_cfg(*overrides, "trainer.iterations=4"), split)
    a = load_file(str(full / "checkpoints" / "iter_000004" / "policy" / "model.safetensors"))
    b = load_file(str(split / "checkpoints" / "iter_000004" / "policy" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the store holds each iteration's attempts once, identical to the uninterrupted run's
    import sqlite3

    def counts(d):
        con = sqlite3.connect(d / "stats.sqlite")
        # train/selection only: the first leg of the split run also evaluates at its last iteration (2)
        return con.execute("SELECT iteration, phase, question, reward FROM attempts "
                           "WHERE phase != 'eval' ORDER BY rowid").fetchall()

    assert counts(full) == counts(split)


def test_finished_run_says_so_and_trains_nothing(make_cfg, tmp_path, capsys):
    cfg = make_cfg("engine=hf", "algo=grpo", "trainer.iterations=1", "trainer.eval_every=1")
    train(cfg, tmp_path)
    capsys.readouterr()
    train(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "Nothing to train" in out and "already finished iteration 1" in out


@pytest.mark.vllm
@pytest.mark.parametrize("curriculum", ["learnability", "learnability_history", "skip_zero_variance", "filter_groups"])
def test_each_curriculum_runs_end_to_end_and_fills_the_store(make_cfg, vllm_engine, tmp_path, curriculum):
    import sqlite3

    cfg = make_cfg("algo=grpo", f"curriculum={curriculum}", "trainer.iterations=2", "trainer.eval_every=2",
                   "curriculum.n_select=4")
    s = _summary(train(cfg, tmp_path, engine=vllm_engine))
    assert s["iterations"] == 2
    con = sqlite3.connect(tmp_path / "stats.sqlite")
    phases = dict(con.execute("SELECT phase, COUNT(*) FROM attempts GROUP BY phase").fetchall())
    assert phases["train"] == 2 * 4 * 4  # iterations x questions x samples
    if curriculum == "learnability":
        # pool of 4 x 4 questions, n_select=4 attempts each, per iteration; reused as training rollouts
        assert phases["selection"] == 2 * 16 * 4
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("curriculum/rollouts_selection" in r for r in rows if "train/reward" in r)
