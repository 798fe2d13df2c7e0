"""learner.lora under FSDP2: 2 CPU processes (gloo) against the plain LoRA learner in this process. Only the
adapters train (the base frozen and sharded), the KL's reference is the base with the adapters off, the
merged weights the engine gets equal the one-process ones, and a checkpoint (the adapters and their Adam
state only) resumes as the uninterrupted learner."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest
import torch

from rlreason.config import AlgoConfig, LearnerConfig, LoraConfig
from rlreason.distributed import free_port
from rlreason.learner.learner import Learner
from tests.distributed.test_fsdp_learner import ATOL, MEAN_ATOL
from tests.learner.test_faults import episodes


def make(model_dir: str, pad_id: int, dist=None) -> Learner:
    cfg = LearnerConfig(lr=1e-3, warmup_ratio=0.0, schedule="constant", epochs=2, minibatch_size=3,
                        micro_batch_size=2, lora=LoraConfig(r=4))
    kwargs = {"dist": dist} if dist is not None else {}
    return Learner(model_dir, cfg, AlgoConfig(name="grpo", kl_coef=0.05), device="cpu", dtype=torch.float32,
                   total_updates=100, pad_id=pad_id, temperature=1.0, **kwargs)


def _worker(rank: int, port: int, model_dir: str, pad_id: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import DTensor

    from rlreason.distributed import setup
    from rlreason.distributed.checkpoint import LearnerState
    from rlreason.learner import lora

    dist = setup(timeout_s=300)
    learner = make(model_dir, pad_id, dist)
    trainable = [n for n, p in learner.policy.named_parameters() if p.requires_grad]
    unsharded = [n for n, p in learner.policy.named_parameters() if not isinstance(p, DTensor)]
    optimized = sum(p.numel() for g in learner.optimizer.param_groups for p in g["params"])
    metrics = learner.update(episodes(7))
    merged = {k: v.clone() for k, v in learner.named_weights()}  # collective: every rank gathers

    # checkpoint: the adapters and their Adam state (DCP) + peft's adapter files, then a fresh learner loads them
    ckpt = Path(out).parent / "ckpt"
    state = LearnerState({"policy": learner.policy}, [learner.optimizer], trainable_only=True)
    dcp.save({"learner": state}, checkpoint_id=str(ckpt / "dcp"))
    lora.adapter_files(learner.policy, ckpt / "policy", dist.main)
    resumed = make(model_dir, pad_id, dist)
    dcp.load({"learner": LearnerState({"policy": resumed.policy}, [resumed.optimizer], trainable_only=True)},
             checkpoint_id=str(ckpt / "dcp"))
    resumed.load_state_dict(learner.state_dict(), optimizers=False)
    learner.update(episodes(7, seed=1))
    resumed.update(episodes(7, seed=1))
    after, after_resumed = dict(learner.named_weights()), dict(resumed.named_weights())
    if rank == 0:
        torch.save({"metrics": metrics, "merged": merged, "trainable": trainable, "unsharded": unsharded,
                    "optimized": optimized, "version": learner.version, "after": after,
                    "after_resumed": after_resumed}, out)


@pytest.mark.slow
def test_sharded_lora_update_equals_the_single_process_one_and_resumes(tiny_model_dir, tiny_tokenizer,
                                                                         tmp_path: Path):
    pad = tiny_tokenizer.pad_token_id
    out = str(tmp_path / "sharded.pt")
    ctx, port = mp.get_context("spawn"), free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, tiny_model_dir, pad, out)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert [p.exitcode for p in procs] == [0, 0]
    sharded = torch.load(out, weights_only=False)

    single = make(tiny_model_dir, pad)
    before = dict(single.named_weights())
    metrics = single.update(episodes(7))
    merged = dict(single.named_weights())

    # only the adapters train, every parameter (the frozen base too) is a shard, Adam holds the adapters only
    assert sharded["trainable"] and all(".lora_A." in n or ".lora_B." in n for n in sharded["trainable"])
    assert sharded["unsharded"] == []
    assert sharded["optimized"] == sum(p.numel() for p in single.policy.parameters() if p.requires_grad)
    assert sharded["version"] == single.version + 6 == 12  # 2 epochs x 3 minibatches per update, none skipped

    # the merged weights (what the engine loads) are the one-process ones, under the base model's names
    assert sharded["merged"].keys() == merged.keys() == before.keys()
    diffs = torch.cat([(sharded["merged"][k] - merged[k]).abs().flatten() for k in merged])
    moved = max((merged[k] - before[k]).abs().max().item() for k in merged)
    print(f"max |diff| {diffs.max().item():.3g}, mean {diffs.mean().item():.3g}, moved {moved:.3g}")
    assert diffs.max().item() <= ATOL < moved / 100
    assert diffs.mean().item() <= MEAN_ATOL
    for key in ("pg_loss", "kl_ref", "grad_norm", "clip_frac", "entropy"):
        assert sharded["metrics"][key] == pytest.approx(metrics[key], rel=1e-4, abs=1e-6), key
    assert metrics["kl_ref"] > 0  # the reference (adapters off) differs from the trained policy

    # a fresh learner loading the checkpoint trains on as the uninterrupted one
    assert all(torch.equal(sharded["after"][k], sharded["after_resumed"][k]) for k in merged)
    assert any(not torch.equal(sharded["after"][k], sharded["merged"][k]) for k in merged)

    # the adapter files are peft's: the base with them loaded is the sharded run's merged policy
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rlreason.learner.lora import MergedWeights

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loaded = dict(MergedWeights(PeftModel.from_pretrained(base, str(tmp_path / "ckpt" / "policy"))))
    assert max((loaded[k] - sharded["merged"][k]).abs().max().item() for k in merged) <= 1e-6
