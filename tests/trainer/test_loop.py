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
def test_vineppo_cost_options_run_end_to_end_and_train_on_the_continuations(make_cfg, vllm_engine, tmp_path):
    """V(s_0) from the group, adaptive K and the vine tree together, on the real engine: the prompt states
    get no continuations, states that disagree get more, and the learner sees the continuations."""
    cfg = make_cfg("algo=vineppo", "trainer.iterations=1", "algo.mc.v0=group", "algo.mc.max_rollouts=4",
                   "algo.mc.new_rollouts=2", "algo.mc.tree=true", "algo.mc.tree_max=12", "trainer.eval_every=100")
    s = _summary(train(cfg, tmp_path, engine=vllm_engine))
    assert s["iterations"] == 1 and s["skipped_updates"] == 0
    (r,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if "train/reward" in line]
    assert 2 <= r["mc/continuations_per_state"] <= 4 and r["mc/rounds"] >= 1
    assert 0 < r["tree/episodes"] <= 12
    # the continuations join the trajectories' minibatches: 16 trajectories / 8 = 2 steps, as without them
    assert r["learner/lr"] > 0 and s["skipped_updates"] == 0


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
        # train/selection only: the first leg of the split run also evaluates (eval, eval_greedy) at its
        # last iteration (2)
        return con.execute("SELECT iteration, phase, question, reward FROM attempts "
                           "WHERE phase NOT IN ('eval', 'eval_greedy') ORDER BY rowid").fetchall()

    assert counts(full) == counts(split)


def test_finished_run_says_so_and_trains_nothing(make_cfg, tmp_path, capsys):
    cfg = make_cfg("engine=hf", "algo=grpo", "trainer.iterations=1", "trainer.eval_every=1")
    train(cfg, tmp_path)
    capsys.readouterr()
    train(cfg, tmp_path)
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines (the run dir's path)
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


class RecordingEngine:
    """The real engine, with every request's prompt, SamplingParams and completions written down."""

    def __init__(self, engine):
        self._engine, self.calls = engine, []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def _record(self, kind, prompts, params, outs):
        from rlreason.engine.base import per_prompt

        for p, sp, cs in zip(prompts, per_prompt(params, len(prompts)), outs):
            self.calls.append((kind, tuple(p), sp, [tuple(c.token_ids) for c in cs]))
        return outs

    def generate(self, prompts, params, version=None):
        return self._record("generate", prompts, params, self._engine.generate(prompts, params, version=version))

    def continue_from(self, prefixes, params, version=None):
        return self._record("continue", prefixes, params, self._engine.continue_from(prefixes, params, version=version))


@pytest.mark.vllm
def test_no_two_samples_of_a_run_share_a_seed_and_mc_does_not_replay_training_samples(
        make_cfg, vllm_engine, tiny_model_dir, tmp_path):
    """Issue 10.1: the MC continuations of a question's prompt used to reuse its training samples' seeds
    (and so were those very samples on vLLM). Three VinePPO iterations with LILO selection and evals: all
    phases, on the untrained model (where two independent samples are almost never equal)."""
    engine = RecordingEngine(vllm_engine)
    cfg = make_cfg("algo=vineppo", "curriculum=learnability", "curriculum.n_select=2", "trainer.iterations=3",
                   "trainer.eval_every=2", "model=hf", f"model.path={tiny_model_dir}")
    train(cfg, tmp_path, engine=engine)
    seeds = [sp.seed + j for _, _, sp, _ in engine.calls for j in range(sp.n)]
    assert None not in seeds
    assert len({s & 0xFFFFFFFF for s in seeds}) == len(seeds)  # distinct as a CPU generator sees them
    kinds = {(kind, sp.n, sp.temperature) for kind, _, sp, _ in engine.calls}
    n = cfg.rollout.samples_per_question
    assert {("generate", n, 1.0), ("generate", 2, 1.0), ("continue", 2, 1.0), ("generate", 1, 0.0)} <= kinds

    # Training samples per prompt, per call order; the MC continuations of s_0 are continue_from(prompt).
    train_samples: dict[tuple, list[tuple]] = {}
    same, pairs, chance_same, chance_pairs = 0, 0, 0, 0
    for kind, prefix, sp, outs in engine.calls:
        if kind == "generate" and sp.n == n and sp.temperature == 1.0:
            train_samples[prefix] = outs
            chance_same += sum(a == b for i, a in enumerate(outs) for b in outs[i + 1:])
            chance_pairs += n * (n - 1) // 2
        elif kind == "continue" and prefix in train_samples:  # the state s_0 of a question trained on
            same += sum(c == t for c in outs for t in train_samples[prefix])
            pairs += len(outs) * n
    assert pairs >= 8 * 3  # every question of every iteration has its s_0 estimated
    expected = chance_same / chance_pairs * pairs
    assert same <= expected + 3 * expected ** 0.5 + 1, (same, pairs, expected)


def test_phases_from_two_threads_lose_no_seconds():
    """trainer.async_level=1: the producer's phase ends on its thread while the learner's is ending on the
    loop's. Each adds to the shared totals; a read-modify-write let the learner's `grading += 0` write back
    the total it had read before the producer's grading landed, losing it. Here the learner's thread reads
    first and waits (up to 1 s) for the producer's thread to write."""
    import threading

    from rlreason.trainer.loop import Phases

    class Grader:
        seconds = 0.0

    read, written = threading.Event(), threading.Event()

    class Seconds(dict):  # the learner's read of the grading total waits for the producer's write
        def __getitem__(self, key):
            value = super().__getitem__(key)
            if key == "grading" and threading.current_thread().name == "learner":
                read.set()
                written.wait(1.0)
            return value

        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if key == "grading" and threading.current_thread().name == "producer":
                written.set()

    grader = Grader()
    phases = Phases(grader, {})
    phases.seconds = Seconds(grading=0.0, learner=0.0, rollout=0.0)

    def producer():
        with phases("rollout"):
            grader.seconds += 2.0  # graded during the rollout
            read.wait(1.0)

    def learner():
        with phases("learner"):
            pass

    threads = [threading.Thread(target=producer, name="producer"), threading.Thread(target=learner, name="learner")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert phases.seconds["grading"] == 2.0
