"""A single-process checkpoint exported (rlreason.distributed.export): its policy with the run's tokenizer and
chat template, a model dir that transformers and a freshly started vLLM engine (python -m rlreason.eval) both
load, with the same greedy tokens. On the realistic stand-in (model=tiny_chat: BPE, ChatML, <|im_end|>)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlreason.config import register_configs
from rlreason.distributed.export import export
from rlreason.trainer import checkpoint
from tests.trainer.conftest import CONF

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "rlreason" / "model" / "assets" / "tiny-chat"


def test_a_single_process_checkpoint_exports_to_a_dir_vllm_and_transformers_agree_on(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("config", overrides=["model=tiny_chat", f"cache_dir={tmp_path / 'cache'}"])
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    policy = AutoModelForCausalLM.from_pretrained(ASSETS)  # as a run's learner saves it: no tokenizer files
    ckpt = checkpoint.save(run / "checkpoints", 1, policy, {"iteration": 1})
    assert not (ckpt / "policy" / "tokenizer_config.json").exists()

    out = export(ckpt, tmp_path / "export")
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    assert json.loads((out / "export.json").read_text())["checkpoint"] == str(ckpt)

    proc = subprocess.run([sys.executable, "-m", "rlreason.eval", "model=hf", f"model.path={out}", "data=arith",
                           "data.use_chat_template=true", "eval.n=0", "eval.max_questions=6", "eval.progress=false",
                           f"hydra.run.dir={tmp_path / 'eval'}", f"cache_dir={tmp_path / 'cache'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "eval" / "completions.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    model = AutoModelForCausalLM.from_pretrained(out)
    for row in rows:
        ids = tok.apply_chat_template([{"role": "user", "content": row["problem"]}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=96, do_sample=False)[0, ids.shape[1]:]
        assert tok.decode(gen, skip_special_tokens=True) == row["response"], row
