"""`python -m rlreason.eval`: the committed tiny model through the real vLLM engine (the session's shared
one) and through transformers, the eval -> grade round trip, run and checkpoint dirs, the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlreason.config import ConfigError, register_configs
from rlreason.model.tiny import ASSETS
from rlreason.validate import validate_eval
from tests.trainer.conftest import CONF

ROOT = Path(__file__).resolve().parents[1]
# 24 questions, 2 samples each, responses cut at 40 tokens: the longest chains get truncated, so every
# verdict kind the arith grader gives shows up in the round trip.
SMALL = ["eval.max_questions=24", "eval.n=2", "eval.max_new_tokens=40", "eval.progress=false"]


def eval_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("eval", overrides=["model=hf", f"model.path={ASSETS}", "data=arith", *overrides])
    validate_eval(cfg)
    return cfg


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def vllm_eval(tmp_path_factory, vllm_engine) -> Path:
    from rlreason.eval import evaluate_model

    out = tmp_path_factory.mktemp("eval-vllm")
    evaluate_model(eval_cfg(*SMALL), out, engine=vllm_engine)
    return out


@pytest.mark.vllm
def test_tiny_model_through_vllm_matches_transformers(vllm_eval, tmp_path, capsys):
    from rlreason.eval import evaluate_model

    metrics = json.loads((vllm_eval / "metrics.json").read_text())
    got = rows(vllm_eval / "completions.jsonl")
    assert len(got) == 24 * 3 and metrics["questions"] == 24 and metrics["max_new_tokens"] == 40
    greedy = [r for r in got if r["sample"] == "greedy"]
    assert metrics["greedy"] == sum(r["reward"] for r in greedy) / 24
    assert metrics["mean@2"] == sum(r["reward"] for r in got if r["sample"] != "greedy") / 48
    assert {r["reason"] for r in got} == {"correct", "wrong", "truncated"}
    assert all(r["truncated"] == (r["reason"] == "truncated") for r in got)
    # The chains of one to three steps fit in 40 tokens: the committed model solves most of them.
    short = metrics["by_level"]["1"], metrics["by_level"]["2"], metrics["by_level"]["3"]
    assert sum(m["greedy"] * m["questions"] for m in short) / sum(m["questions"] for m in short) > 0.5

    evaluate_model(eval_cfg(*SMALL, "engine=hf", "eval.n=0"), tmp_path)
    table = capsys.readouterr().out
    assert "| tiny-arith on arith (test) | questions | greedy |" in table
    assert table.rstrip().splitlines()[-1] == str(tmp_path / "metrics.json")
    hf = rows(tmp_path / "completions.jsonl")
    assert [(r["id"], r["response"], r["reason"]) for r in hf] == [(r["id"], r["response"], r["reason"]) for r in greedy]


@pytest.mark.vllm
def test_eval_then_grade_gives_the_same_verdicts(vllm_eval):
    path = vllm_eval / "completions.jsonl"
    proc = subprocess.run([sys.executable, "-m", "rlreason.grade", str(path), "--task", "arith"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(v["reward"], v["reason"], v["extracted"]) for v in verdicts] == \
        [(r["reward"], r["reason"], r["extracted"]) for r in rows(path)]


def fake_run(tmp_path: Path, iterations: list[int]) -> Path:
    """A run dir as training leaves it: the composed config and checkpoints of the committed model."""
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM

    from rlreason.trainer import checkpoint

    run = tmp_path / "grpo-arith-tiny-uniform-s0"
    (run / ".hydra").mkdir(parents=True)
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("config", overrides=["algo=grpo", "rollout.max_new_tokens=48"])
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    policy = AutoModelForCausalLM.from_pretrained(ASSETS)
    for it in iterations:
        checkpoint.save(run / "checkpoints", it, policy, {"iteration": it})
    return run


def test_run_and_checkpoint_dirs(tmp_path):
    from rlreason.eval import evaluate_model, max_new_tokens, resolve_target

    run = fake_run(tmp_path, [2, 3])
    newest = run / "checkpoints" / "iter_000003"
    for path in (run, newest, newest / "policy"):
        cfg = eval_cfg(f"model.path={path}")
        target = resolve_target(cfg)
        assert (target.weights, target.checkpoint) == (str(newest / "policy"), str(newest))
        assert target.tokenizer == str(ASSETS)  # the run's builtin model, resolved as training did
        assert max_new_tokens(cfg, target, 20, 256) == 48  # the run's own response length
    assert eval_cfg(f"model.path={newest}").model.name == "grpo-arith-tiny-uniform-s0-iter_000003"

    (newest / "policy" / "model.safetensors").write_bytes(b"cut short")  # damaged: the previous one is used
    assert resolve_target(eval_cfg(f"model.path={run}")).checkpoint == str(run / "checkpoints" / "iter_000002")
    with pytest.raises(ConfigError, match="iter_000003 is damaged"):
        resolve_target(eval_cfg(f"model.path={newest}"))

    (run / ".hydra" / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="holds no tokenizer .* set model.tokenizer"):
        resolve_target(eval_cfg(f"model.path={run}"))
    out = tmp_path / "out"
    metrics = json.loads(evaluate_model(eval_cfg(f"model.path={run}", f"model.tokenizer={ASSETS}", "engine=hf",
                                                 "eval.max_questions=4", "eval.n=0", "eval.progress=false"),
                                        out).read_text())
    assert metrics["checkpoint"] == str(run / "checkpoints" / "iter_000002") and metrics["questions"] == 4


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", RLREASON_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "rlreason.eval", *args, f"hydra.run.dir={tmp_path / 'out'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.vllm
def test_command_line(tmp_path):
    """docs/evaluation.md's command (on a subset): the table on stdout, the files, metrics.json's path last."""
    proc = cli(tmp_path, "model=hf", "model.path=rlreason/model/assets/tiny-arith", "data=arith",
               "eval.max_questions=16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.rstrip().splitlines()  # vLLM's own log lines come first
    assert any(x.startswith("| tiny-arith on arith (test) | questions | greedy | mean@4 | maj@4 | pass@4 |")
               for x in lines)
    assert lines[-1] == str(tmp_path / "out" / "metrics.json")
    assert "| level | questions |" in proc.stdout
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["questions"] == 16 and metrics["engine"] == "vllm"
    assert len(rows(tmp_path / "out" / "completions.jsonl")) == 16 * 5


@pytest.mark.parametrize(("args", "message"), [
    (["model=hf"], "model.path must be set"),
    (["eval.n=0", "eval.greedy=false"], "eval.n=0 must be >= 1, or 0 with eval.greedy=true"),
    (["data=jsonl", "data.test_path=/no/such.jsonl"], "/no/such.jsonl: no such file"),
])
def test_command_line_errors(tmp_path, args, message):
    proc = cli(tmp_path, "engine=hf", *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("rlreason: ") and message in proc.stderr and "Traceback" not in proc.stderr


ARITH_FN = '''
def reward(response, record):
    lines = response.strip().splitlines()
    last = lines[-1] if lines else ""
    return {"correct": float(last == "#### " + record["answer"]), "format": float(last.startswith("####"))}
'''


@pytest.mark.vllm
def test_eval_with_a_reward_function_then_regrade(tmp_path, vllm_engine):
    """The eval takes reward.fn: components in metrics.json, each row's record in completions.jsonl, and
    `python -m rlreason.grade --reward.fn` gives back the same verdicts from that file."""
    from rlreason.eval import evaluate_model

    fn = tmp_path / "arith_fn.py"
    fn.write_text(ARITH_FN)
    out = tmp_path / "eval"
    evaluate_model(eval_cfg(*SMALL, f"reward.fn={fn}:reward", "reward.weights.format=0.5"), out, engine=vllm_engine)
    metrics = json.loads((out / "metrics.json").read_text())
    got = rows(out / "completions.jsonl")
    assert metrics["reward/error"] == 0 and metrics["reward/timeout"] == 0
    assert set(metrics["reward_components"]["sampled"]) == {"mean/correct", "mean/format"}
    assert all(r["record"]["answer"] and (r["components"] is None) == r["truncated"] for r in got)
    # success is `correct`: greedy accuracy counts it, whatever the format credit adds to the reward
    greedy = [r for r in got if r["sample"] == "greedy"]
    assert metrics["greedy"] == sum(r["reason"] == "correct" for r in greedy) / 24
    assert any(r["reward"] == 1.5 for r in got) and any(r["reward"] == 0.5 for r in got)
    proc = subprocess.run([sys.executable, "-m", "rlreason.grade", str(out / "completions.jsonl"), "--reward.fn",
                           f"{fn}:reward", "--reward.weights", '{"format": 0.5}'], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(v["reward"], v["reason"]) for v in verdicts] == [(r["reward"], r["reason"]) for r in got]
