"""learner.lora.sync=adapter (rlreason/learner/lora.py, rlreason/engine/vllm_engine.py): the vLLM engine is
started with enable_lora, each policy version's adapter goes to it as a new LoRARequest, every generate
(rollouts, MC continuations, eval) runs under it; its log-probs are the learner's, a resumed run is the
uninterrupted one, and settings that cannot work are refused before compute."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlreason.config import ConfigError
from tests.trainer import conftest as trainer_conftest
from tests.trainer.conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]
make_cfg = trainer_conftest.make_cfg


@pytest.mark.parametrize(("overrides", "expected"), [
    (["learner.lora.r=8", "learner.lora.sync=both"], "learner.lora.sync=both must be one of merged|adapter"),
    (["learner.lora.sync=adapter"], "learner.lora.sync=adapter needs adapters: set learner.lora.r > 0"),
    (["learner.lora.r=8", "learner.lora.sync=adapter", "engine=hf"], "needs engine=vllm"),
    (["learner.lora.r=1024", "learner.lora.sync=adapter"], "vLLM serves adapters up to rank 512"),
    (["learner.lora.r=8", "learner.lora.sync=adapter", "trainer.async_level=1"], "does not run one step off"),
])
def test_adapter_sync_settings_that_cannot_work_are_refused_before_compute(make_cfg, overrides, expected):
    with pytest.raises(ConfigError, match=expected.replace("|", r"\|")):
        make_cfg(*overrides)


def test_adapter_sync_under_torchrun_is_refused_before_compute(make_cfg, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"learner.lora.sync=adapter \(learner.lora.r=8\) runs in one process"):
        make_cfg("learner.lora.r=8", "learner.lora.sync=adapter")


def test_a_model_vllm_cannot_lora_is_refused_before_the_engine_starts(make_cfg, tiny_model_dir, tmp_path,
                                                                       monkeypatch):
    """GPT-2 has no LoRA support in vLLM: learner.lora.sync=adapter on it stops in build(), before any engine."""
    from transformers import GPT2Config, GPT2LMHeadModel

    import rlreason.engine
    from rlreason.engine._vllm_compat import lora_problem
    from rlreason.trainer.build import build

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=512)).save_pretrained(gpt2)
    for f in Path(tiny_model_dir).iterdir():
        if "token" in f.name or f.name.startswith("special"):
            shutil.copy2(f, gpt2 / f.name)
    assert lora_problem(tiny_model_dir) is None  # Llama: vLLM serves its adapters
    assert "vLLM has no LoRA support for GPT2LMHeadModel" in lora_problem(str(gpt2))

    def heavy(*args, **kwargs):
        raise AssertionError("the engine started before vLLM's LoRA support was checked")

    monkeypatch.setattr(rlreason.engine, "make_engine", heavy)
    cfg = make_cfg("model=hf", f"model.path={gpt2}", "algo=grpo", "learner.lora.r=4", "learner.lora.sync=adapter",
                   "learner.lora.target_modules=[lm_head]")  # GPT-2's attention is Conv1D, not nn.Linear
    with pytest.raises(ConfigError, match="learner.lora.sync=adapter: vLLM has no LoRA support for GPT2LMHeadModel"):
        build(cfg, tmp_path / "run")


def run(run_dir: Path, iterations: int, cache: Path) -> subprocess.CompletedProcess:
    """python -m rlreason.run in a process of its own: its engine is a LoRA one (one vLLM engine a process)."""
    cmd = [sys.executable, "-m", "rlreason.run", *SMALL, "algo=grpo", "learner.lora.r=8", "learner.lora.sync=adapter",
           "learner.lr=3e-3", "trainer.eval_every=2", f"trainer.iterations={iterations}", f"cache_dir={cache}",
           f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.vllm
def test_adapter_sync_gives_the_learners_logprobs_and_resumes_as_the_uninterrupted_run(tmp_path):
    """3 iterations in one go == 2, stop, resume, 1 more, with the engine serving each version's adapter."""
    cache, full, split = tmp_path / "cache", tmp_path / "full", tmp_path / "split"
    proc = run(full, 3, cache)
    out = proc.stdout
    assert "vLLM serves the policy as a LoRA adapter (max_lora_rank 8)" in proc.stdout + proc.stderr
    run(split, 2, cache)
    assert "Resuming" in run(split, 3, cache).stdout
    rows = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    learned = [r for r in rows if "learner/logprob_mismatch" in r]
    print([(r["learner/logprob_mismatch"], r["learner/logprob_mismatch_max"], r["learner/kl_ref"]) for r in learned])
    assert len(learned) == 3
    # the engine sampled with the learner's policy, adapters included: fp32 on CPU, ~1e-7
    assert all(r["learner/logprob_mismatch"] < 1e-5 and r["learner/logprob_mismatch_max"] < 1e-4 for r in learned)
    assert learned[-1]["learner/kl_ref"] > 1e-6  # ... while the adapters moved it away from the base
    assert "Held-out accuracy" in out and sum("eval/accuracy" in r for r in rows) >= 2  # eval ran under the adapter
    a, b = (load_file(str(r / "checkpoints" / "iter_000003" / "policy" / "adapter_model.safetensors"))
            for r in (full, split))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in a.items())
    m_full = {r["iteration"]: r for r in rows}
    m_split = {json.loads(line)["iteration"]: json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()}
    for key in ("train/reward", "learner/pg_loss", "learner/logprob_mismatch"):
        assert m_split[3][key] == m_full[3][key], key
