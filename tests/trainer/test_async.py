"""trainer.async_level=1: the next batch is produced while the learner trains on this one.

Staleness is bounded at the level; every call of one batch (rollouts, selection and VinePPO's MC
continuations) samples from one policy version and no weights move in the middle of it; the importance
weight pi_old / pi_behaviour is on and applied; a stopped and resumed async run is the uninterrupted
one (regenerating the in-flight batch). The kill -9 version is tests/trainer/test_kill_anywhere.py.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading

import pytest
import torch
from safetensors.torch import load_file

from rlreason.trainer.loop import train


def metric_rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "train/reward" in line]


class VersionLog:
    """The engine, with every call's thread, requested version and held version, and every sync, in order."""

    def __init__(self, engine):
        self._engine, self.events, self._lock = engine, [], threading.Lock()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def _log(self, *event):
        with self._lock:
            self.events.append(event)

    def generate(self, prompts, params, version=None):
        self._log("generate", threading.current_thread().name, version, self._engine.version)
        return self._engine.generate(prompts, params, version=version)

    def continue_from(self, prefixes, params, version=None):
        self._log("continue", threading.current_thread().name, version, self._engine.version)
        return self._engine.continue_from(prefixes, params, version=version)

    def sync_weights(self, named_tensors, version):
        self._log("sync", threading.current_thread().name, version, version)
        return self._engine.sync_weights(named_tensors, version)


@pytest.mark.vllm
def test_one_step_off_staleness_one_version_per_batch_and_the_importance_weight(make_cfg, vllm_engine, tmp_path):
    engine = VersionLog(vllm_engine)
    cfg = make_cfg("algo=vineppo", "curriculum=learnability", "curriculum.n_select=2", "trainer.iterations=4",
                   "trainer.eval_every=100", "trainer.async_level=1")
    assert cfg.algo.tis_cap is None
    train(cfg, tmp_path, engine=engine)
    rows = metric_rows(tmp_path)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    # the first batch is produced in line (staleness 0), every later one under the weights one update old
    assert [r["async/staleness"] for r in rows] == [0.0, 1.0, 1.0, 1.0]
    # the importance weight is on (a null cap gets ASYNC_TIS_CAP) and sees a real gap one step off
    assert all("learner/tis_weight_mean" in r for r in rows)
    assert rows[0]["async/logprob_gap"] < 1e-3 < min(r["async/logprob_gap"] for r in rows[1:])
    # the training wall-clock is logged (the phases overlap one step off: their sum is not it), cumulative,
    # and within the run's whole wall-clock (which adds the eval)
    walls = [r["time/train_wall"] for r in rows]
    assert all(0 < a < b for a, b in zip(walls, walls[1:]))
    assert walls[-1] <= json.loads((tmp_path / "summary.json").read_text())["wall_clock_s"] + 0.1

    # Batches 2..4 were produced on the producer's thread: each one's calls (selection, rollouts, MC)
    # ask for one version, the one the engine holds, and no sync falls between its first and last call.
    calls: dict[str, list[int]] = {}
    for i, (kind, thread, asked, held) in enumerate(engine.events):
        if kind != "sync" and thread.startswith("rlreason-producer-"):
            assert asked == held
            calls.setdefault(thread, []).append(i)
    assert sorted(calls) == [f"rlreason-producer-{it}" for it in (2, 3, 4)]
    for thread, idx in calls.items():
        span = engine.events[idx[0]: idx[-1] + 1]
        assert not any(e[0] == "sync" for e in span), thread
        assert len({e[2] for e in span if e[1] == thread}) == 1
        assert {e[0] for e in span if e[1] == thread} == {"generate", "continue"}  # MC included
    # ... and the version is the one before the update that trains on the previous batch
    versions = [engine.events[idx[0]][2] for _, idx in sorted(calls.items())]
    assert versions == sorted(versions) and len(set(versions)) == 3


class Stop(BaseException):
    pass


def stop_after_checkpoint_2_then_resume(monkeypatch, run, between=lambda: None) -> None:
    """`run()` stopped right after its iteration-2 checkpoint (as a kill there would), `between()`, then
    `run()` again: the resume."""
    import rlreason.trainer.loop as loop

    save = loop.save_checkpoint

    def save_then_stop(run_, it, *args):
        path = save(run_, it, *args)
        if it == 2:
            raise Stop
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)
    with pytest.raises(Stop):
        run()
    between()
    monkeypatch.setattr(loop, "save_checkpoint", save)
    run()


def test_resumed_async_run_is_the_uninterrupted_one(make_cfg, tmp_path, monkeypatch):
    """4 iterations in one go == a run stopped right after checkpoint 2 (batch 3 in flight) and resumed:
    batch 3 is regenerated under the weights it was sampled with (kept in the checkpoint) and with the
    history the curriculum saw the first time (learnability_history reads the store)."""

    overrides = ("engine=hf", "algo=vineppo", "curriculum=learnability_history", "trainer.eval_every=100",
                 "trainer.async_level=1", "trainer.iterations=4")
    full, split = tmp_path / "full", tmp_path / "split"
    train(make_cfg(*overrides), full)
    def behaviour_kept():
        assert (split / "checkpoints" / "iter_000002" / "behaviour.safetensors").is_file()

    stop_after_checkpoint_2_then_resume(monkeypatch, lambda: train(make_cfg(*overrides), split), behaviour_kept)
    a = load_file(str(full / "checkpoints" / "iter_000004" / "policy" / "model.safetensors"))
    b = load_file(str(split / "checkpoints" / "iter_000004" / "policy" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    def store(d):
        con = sqlite3.connect(d / "stats.sqlite")
        return (con.execute("SELECT iteration, phase, question, reward, policy_version FROM attempts "
                            "WHERE phase NOT IN ('eval', 'eval_greedy') ORDER BY rowid").fetchall(),
                con.execute("SELECT * FROM selections ORDER BY rowid").fetchall())

    assert store(full) == store(split)
    keep = ("train/", "learner/", "async/", "adv/", "mc/", "curriculum/")
    strip = [{k: v for k, v in r.items() if k.startswith(keep)} for r in metric_rows(full)]
    assert strip == [{k: v for k, v in r.items() if k.startswith(keep)} for r in metric_rows(split)]


class Clock:
    """trainer/loop.py's and the grader's clock, moved only by the engine's calls: one second each."""

    def __init__(self):
        self.now, self._lock = 0.0, threading.Lock()

    def perf_counter(self) -> float:
        return self.now

    def tick(self) -> None:
        with self._lock:
            self.now += 1.0


class Ticking:
    def __init__(self, engine, clock: Clock):
        self._engine, self._clock = engine, clock

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, prompts, params, version=None):
        out = self._engine.generate(prompts, params, version=version)
        self._clock.tick()
        return out


def test_a_resumed_async_run_keeps_the_books_of_the_uninterrupted_one(make_cfg, hf_engine, tmp_path, monkeypatch):
    """Attempts are stored under the policy version that sampled them (selection and train alike: the
    behaviour policy's, one update behind the learner's one step off); and a run resumed with a batch in
    flight counts that batch's seconds once, as the uninterrupted run does: its time/<phase> (the
    checkpoint had them already, and the batch is made again) and its time/train_wall (the remade batch
    overlaps no update: the run before the checkpoint already spent that time) are the uninterrupted
    run's. The clock moves only in the engine's calls, so the seconds are exact."""
    import rlreason.reward.meter as meter
    import rlreason.trainer.loop as loop

    clock = Clock()
    monkeypatch.setattr(loop, "time", clock)
    monkeypatch.setattr(meter, "time", clock)
    engine = Ticking(hf_engine, clock)
    overrides = ("algo=grpo", "curriculum=learnability", "curriculum.n_select=2", "curriculum.pool_factor=2",
                 "trainer.eval_every=1", "trainer.eval_samples=1", "trainer.async_level=1", "trainer.iterations=4")
    full, split = tmp_path / "full", tmp_path / "split"
    train(make_cfg(*overrides), full, engine=engine)
    stop_after_checkpoint_2_then_resume(monkeypatch, lambda: train(make_cfg(*overrides), split, engine=engine))

    con = sqlite3.connect(full / "stats.sqlite")
    version = dict(con.execute("SELECT iteration, MIN(policy_version) FROM attempts WHERE phase = 'eval' "
                               "GROUP BY iteration"))  # the learner's after each update (eval_every=1)
    for phase in ("selection", "train"):
        sampled = dict(con.execute("SELECT iteration, MIN(policy_version) FROM attempts WHERE phase = ? GROUP BY "
                                   "iteration HAVING MIN(policy_version) = MAX(policy_version)", (phase,)))
        # batch t was sampled by the weights after update t-2 (batches 1 and 2: the initial ones)
        assert sampled == {t: version[max(t - 2, 0)] for t in range(1, 5)}, phase
    assert len(set(version.values())) == 5  # every update moved the version

    last = metric_rows(full)[-1], metric_rows(split)[-1]
    producer = ("time/selection", "time/rollout", "time/advantages", "time/grading")
    assert [last[0][k] for k in producer] == [last[1][k] for k in producer]
    assert last[0]["time/rollout"] == 4.0  # one engine call per batch, four batches
    assert last[0]["time/train_wall"] == last[1]["time/train_wall"]


def test_the_importance_weight_corrects_a_stale_batch(tiny_model_dir, tiny_tokenizer):
    """The decoupled objective one step off: the batch's log-probs are the behaviour policy's (version 0),
    pi_old is the learner's after an update (version 1); each token's loss is weighted by
    min(pi_old / pi_behaviour, cap). Without the weight the loss is the plain one, and this fails."""
    from tests.learner.test_faults import episodes
    from tests.learner.test_update import learner

    pad = tiny_tokenizer.pad_token_id
    a = learner(tiny_model_dir, pad, tis_cap=1.5)
    stale = episodes(8)
    for ep, lp in zip(stale, a.logprobs(stale)):
        ep.logprobs = list(lp)  # sampled by version 0
    a.update(episodes(8))  # ... then the learner moves on (one update)
    old = a.logprobs(stale)
    m = a.update(stale)
    gaps = [o - s for ep, lp in zip(stale, old) for o, s in zip(lp, ep.logprobs)]
    assert max(map(abs, gaps)) > 1e-3  # the step moved the policy
    w = [min(math.exp(g), 1.5) for g in gaps]
    advs = [x for ep in stale for x in ep.advantages]
    assert abs(m["pg_loss"] - -sum(wi * ai for wi, ai in zip(w, advs)) / len(advs)) < 1e-5
    assert abs(m["pg_loss"] - -sum(advs) / len(advs)) > 1e-4  # the plain loss is not it


def test_async_level_is_checked(make_cfg):
    from rlreason.config import ConfigError

    with pytest.raises(ConfigError, match="trainer.async_level=2"):
        make_cfg("trainer.async_level=2")
