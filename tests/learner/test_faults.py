"""Numerical faults: a non-finite loss or gradient skips the update (counted, weights untouched), too many
in a row stop the run with its last good checkpoint intact, and a broken weight sync shows up in the
`learner/logprob_mismatch` metric."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlreason.config import AlgoConfig, LearnerConfig
from rlreason.data.record import Question
from rlreason.learner.learner import Learner, TrainingDiverged
from rlreason.rollout import Episode
from tests.trainer import conftest as trainer_conftest

ROOT = Path(__file__).resolve().parents[2]
make_cfg = trainer_conftest.make_cfg  # the fixture composing the real config tree (tests/trainer)


def episodes(n: int = 8, adv: float = 1.0, seed: int = 0) -> list[Episode]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        prompt = torch.randint(3, 40, (6,), generator=g).tolist()
        response = torch.randint(3, 40, (5,), generator=g).tolist()
        q = Question(id=f"q{i}", problem="1+1", answer="2")
        out.append(Episode(q, prompt, response, [0.0] * 5, "", "stop", reward=float(i % 2),
                           advantages=[adv * (1 if i % 2 else -1)] * 5))
    return out


def make_learner(model_dir: str, pad_id: int, **learner_kw) -> Learner:
    cfg = LearnerConfig(lr=1e-3, warmup_ratio=0.0, schedule="constant", epochs=1, minibatch_size=4,
                        micro_batch_size=4, **learner_kw)
    return Learner(model_dir, cfg, AlgoConfig(name="grpo", kl_coef=0.0), device="cpu", dtype=torch.float32,
                   total_updates=100, pad_id=pad_id, temperature=1.0)


def weights(learner: Learner) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in learner.policy.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def learner(tiny_model_dir, tiny_tokenizer):
    return make_learner(tiny_model_dir, tiny_tokenizer.pad_token_id, max_bad_updates=3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_skips_the_update(learner, bad):
    before, opt_before = weights(learner), learner.optimizer.state_dict()
    metrics = learner.update(episodes(adv=bad))  # 8 episodes / minibatch 4 = 2 steps, both poisoned
    assert metrics["skipped_update"] == 1.0
    assert learner.skipped_updates == 2 and learner.bad_updates == 2 and learner.version == 0
    assert same(before, weights(learner))
    assert learner.optimizer.state_dict()["state"] == opt_before["state"] == {}  # no Adam moment either
    assert all(p.grad is None for p in learner.policy.parameters())  # no poisoned gradient left behind


def test_non_finite_gradient_with_finite_loss_skips(learner):
    param = next(learner.policy.parameters())
    handle = param.register_hook(lambda g: torch.full_like(g, math.nan))
    before = weights(learner)
    try:
        metrics = learner.update(episodes())
    finally:
        handle.remove()
    assert math.isfinite(metrics.get("pg_loss", 0.0)) or "pg_loss" not in metrics
    assert learner.skipped_updates == 2 and same(before, weights(learner))
    # the next healthy update goes through and resets the consecutive count
    metrics = learner.update(episodes(seed=1))
    assert metrics["skipped_update"] == 0.0 and learner.bad_updates == 0 and learner.version == 2
    assert not same(before, weights(learner))
    assert all(torch.isfinite(v).all() for v in weights(learner).values())


def test_consecutive_bad_updates_raise(learner):
    learner.update(episodes(adv=math.nan))  # 2 bad
    learner.update(episodes(seed=1))  # good: the count starts again
    assert learner.bad_updates == 0 and learner.skipped_updates == 2
    learner.update(episodes(n=4, adv=math.nan))  # 1 bad
    learner.update(episodes(n=4, adv=math.nan))  # 2 bad
    good = weights(learner)
    with pytest.raises(TrainingDiverged, match="3 consecutive updates had a non-finite loss or gradient"):
        learner.update(episodes(n=4, adv=math.nan))  # 3rd in a row
    assert learner.skipped_updates == 5
    assert same(good, weights(learner))  # nothing poisoned on the way out


def test_skipped_updates_survive_a_checkpoint(learner, tiny_model_dir, tiny_tokenizer):
    learner.update(episodes(adv=math.nan))
    fresh = make_learner(tiny_model_dir, tiny_tokenizer.pad_token_id)
    fresh.load_state_dict(learner.state_dict())
    assert fresh.skipped_updates == 2


# --- through the loop --------------------------------------------------------------------------------


def test_diverging_run_stops_with_its_last_good_checkpoint(make_cfg, tmp_path, monkeypatch):
    """NaN advantages from iteration 3 on: iteration 3 skips both its updates (and is checkpointed with
    unchanged weights), iteration 4's first skip is the third in a row -> TrainingDiverged. The newest
    checkpoint is iteration 3's, loadable, finite, and equal to iteration 2's weights."""
    import rlreason.trainer.produce as produce
    from rlreason.trainer import checkpoint
    from rlreason.trainer.loop import train

    calls = []
    real = produce.assign_outcome_advantages

    def poisoned(name, groups, normalize_std):
        calls.append(1)
        metrics = real(name, groups, normalize_std)
        if len(calls) >= 3:
            for g in groups:
                for ep in g:
                    ep.advantages = [math.nan] * len(ep.response_ids)
        return metrics

    monkeypatch.setattr(produce, "assign_outcome_advantages", poisoned)
    cfg = make_cfg("engine=hf", "algo=grpo", "trainer.iterations=6", "trainer.eval_every=100",
                   "learner.epochs=1", "learner.max_bad_updates=3")
    with pytest.raises(TrainingDiverged):
        train(cfg, tmp_path)
    ckpts = tmp_path / "checkpoints"
    assert [p.name for p in checkpoint.list_checkpoints(ckpts)] == ["iter_000002", "iter_000003"]
    path, state = checkpoint.load_latest(ckpts)
    assert path.name == "iter_000003" and state["learner"]["skipped_updates"] == 2
    w3 = load_file(str(path / "policy" / "model.safetensors"))
    w2 = load_file(str(ckpts / "iter_000002" / "policy" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in w3.values())
    assert w2.keys() == w3.keys() and all(torch.equal(w2[k], w3[k]) for k in w2)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["learner/skipped_update"] for r in rows if "learner/skipped_update" in r] == [0.0, 0.0, 1.0]
    # ... and the run resumes from it (without the fault) and finishes
    monkeypatch.setattr(produce, "assign_outcome_advantages", real)
    summary = json.loads(train(cfg, tmp_path).read_text())
    assert summary["iterations"] == 6 and summary["skipped_updates"] == 2


def test_cli_exit_status_3_on_divergence(tmp_path):
    """An absurd learning rate blows the weights up; the run stops with status 3 and says why."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RLREASON_CACHE=str(tmp_path / "cache"))
    args = ["engine=hf", "algo=grpo", "learner.lr=1e30", "trainer.iterations=4", "trainer.eval_every=100",
            "trainer.questions_per_iteration=4", "rollout.samples_per_question=4", "learner.minibatch_size=4",
            "learner.micro_batch_size=4", "trainer.eval_max_questions=4", "trainer.eval_samples=1",
            "rollout.max_new_tokens=16", "rollout.max_gold_cut=null", "trainer.stop_all_truncated=0",
            "trainer.progress=false",
            f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run([sys.executable, "-m", "rlreason.run", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "consecutive updates had a non-finite loss or gradient" in proc.stderr
    assert "the last good checkpoint is intact" in proc.stderr and "Traceback" not in proc.stderr


# --- the log-prob mismatch --------------------------------------------------------------------------


def test_logprob_mismatch_shows_a_skipped_sync(make_cfg, tmp_path, monkeypatch):
    """Iteration 2's samples come from an engine whose sync after iteration 1 was dropped: its
    mismatch is large; iterations 1 and 3 (synced) are small."""
    from rlreason.engine.hf import HFEngine
    from rlreason.trainer.loop import train

    calls = []
    real_sync = HFEngine.sync_weights

    def flaky_sync(self, named_tensors, version):
        calls.append(version)
        if len(calls) == 2:  # 1st: build; 2nd: after iteration 1's update -> dropped
            self.version = version
            return
        real_sync(self, named_tensors, version)

    monkeypatch.setattr(HFEngine, "sync_weights", flaky_sync)
    cfg = make_cfg("engine=hf", "algo=grpo", "trainer.iterations=3", "trainer.eval_every=100", "learner.lr=1e-3")
    train(cfg, tmp_path)
    rows = {r["iteration"]: r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())}
    mismatch = [rows[i]["learner/logprob_mismatch"] for i in (1, 2, 3)]
    print("logprob mismatch per iteration:", mismatch)
    assert mismatch[0] < 1e-3 and mismatch[2] < 1e-3
    assert mismatch[1] > 1e-2 and mismatch[1] > 50 * max(mismatch[0], mismatch[2])
