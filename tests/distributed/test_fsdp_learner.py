"""The FSDP2 learner on 2 CPU processes (gloo) against the plain learner in this process: PPO (policy,
critic and KL reference, all sharded), a minibatch that leaves one rank with nothing (a padding pass),
micro-batch accumulation. Same weights after the update, to float32 rounding."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest
import torch

from rlreason.config import AlgoConfig, LearnerConfig
from rlreason.distributed import free_port
from rlreason.learner.learner import Learner
from tests.learner.test_faults import episodes

# The ranks sum the same gradients in another order, so the runs agree to rounding, which Adam magnifies
# where a gradient is near zero (its first steps move every weight by ~lr x sign(gradient)): measured after
# 6 steps at lr 1e-3, max |difference| 2.1e-6 while the update moved weights by up to 5.9e-3.
ATOL = 1e-5
MEAN_ATOL = 1e-8


def make(model_dir: str, pad_id: int, dist=None, budget: int | None = None) -> Learner:
    cfg = LearnerConfig(lr=1e-3, warmup_ratio=0.0, schedule="constant", epochs=2, minibatch_size=3,
                        micro_batch_size=2, max_tokens_per_micro_batch=budget)
    kwargs = {"dist": dist} if dist is not None else {}
    return Learner(model_dir, cfg, AlgoConfig(name="ppo", kl_coef=0.05), device="cpu", dtype=torch.float32,
                   total_updates=100, pad_id=pad_id, temperature=1.0, **kwargs)


def weights(learner: Learner) -> dict[str, torch.Tensor]:
    from rlreason.distributed.fsdp import full_weights

    out = {f"policy.{k}": v.clone() for k, v in full_weights(learner.policy)}
    return out | {f"critic.{k}": v.clone() for k, v in full_weights(learner.critic)}


def _worker(rank: int, port: int, model_dir: str, pad_id: int, out: str, budget: int | None = None) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from rlreason.distributed import setup

    dist = setup(timeout_s=300)
    # Each model is sharded before the next is loaded: a rank never holds two full models on the CPU.
    import rlreason.distributed.fsdp as fsdp
    import rlreason.learner.critic as critic_module
    import rlreason.learner.learner as learner_module

    events: list[str] = []

    def recording(fn, name):
        def wrapped(*args, **kwargs):
            events.append(name)
            return fn(*args, **kwargs)
        return wrapped

    learner_module.AutoModelForCausalLM.from_pretrained = recording(
        learner_module.AutoModelForCausalLM.from_pretrained, "load")
    critic_module.AutoModel.from_pretrained = recording(critic_module.AutoModel.from_pretrained, "load")
    fsdp.shard_model = recording(fsdp.shard_model, "shard")
    learner = make(model_dir, pad_id, dist, budget)
    metrics = learner.update(episodes(7))
    w = weights(learner)  # a collective: every rank gathers
    # After no-grad passes no root unit stays gathered: every parameter is registered as a shard again
    # (FSDP2 keeps the root's full parameters after a forward unless told; issue 20).
    learner.logprobs(episodes(3))
    learner.logprobs(episodes(3), learner.ref)
    learner.values(episodes(3))
    from torch.distributed.tensor import DTensor

    unsharded = [f"{i}.{n}" for i, m in enumerate((learner.policy, learner.ref, learner.critic))
                 for n, p in m.named_parameters() if not isinstance(p, DTensor)]
    from rlreason.distributed.fsdp import full_weights

    bf16 = dict(full_weights(learner.policy, torch.bfloat16))  # shards cast before the gather
    # What a weight transfer announces before any gather (rlreason/engine/transfer.py's header)
    announced = {"fp32": full_weights(learner.policy).specs(), "bf16": full_weights(learner.policy, torch.bfloat16).specs()}
    if rank == 0:
        torch.save({"weights": w, "metrics": metrics, "version": learner.version, "unsharded": unsharded,
                    "bf16": bf16, "events": events, "announced": announced}, out)




@pytest.mark.slow
@pytest.mark.parametrize("budget", [None, 25])
def test_sharded_ppo_update_equals_the_single_process_update(tiny_model_dir, tiny_tokenizer, tmp_path: Path, budget):
    """budget 25: token-budget micro-batches packed (2 of these 11-token episodes each; in the last
    minibatch rank 1 has no episode and runs a packed padding pass)."""
    pad = tiny_tokenizer.pad_token_id
    out = str(tmp_path / "sharded.pt")
    ctx, port = mp.get_context("spawn"), free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, tiny_model_dir, pad, out, budget)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert [p.exitcode for p in procs] == [0, 0]

    single = make(tiny_model_dir, pad, budget=budget)  # packed against padded: tests/learner/test_packing.py
    before = weights(single)
    metrics = single.update(episodes(7))
    after = weights(single)
    sharded = torch.load(out, weights_only=False)

    assert sharded["version"] == single.version == 6  # 2 epochs x 3 minibatches, none skipped
    assert sharded["weights"].keys() == after.keys()
    diffs = torch.cat([(sharded["weights"][k] - after[k]).abs().flatten() for k in after])
    moved = max((after[k] - before[k]).abs().max().item() for k in after)
    print(f"max |diff| {diffs.max().item():.3g}, mean {diffs.mean().item():.3g}, moved {moved:.3g}")
    assert diffs.max().item() <= ATOL < moved / 100
    assert diffs.mean().item() <= MEAN_ATOL  # a wrong gradient (a padding pass counted, a missing share) is not
    for key in ("pg_loss", "value_loss", "kl_ref", "grad_norm", "clip_frac", "entropy"):
        assert sharded["metrics"][key] == pytest.approx(metrics[key], rel=1e-4, abs=1e-6), key
    assert sharded["unsharded"] == []
    assert sharded["events"] == ["load", "shard"] * 3  # policy, reference, critic: one full model at a time
    policy = {k.removeprefix("policy."): v for k, v in sharded["weights"].items() if k.startswith("policy.")}
    assert sharded["bf16"].keys() == policy.keys()
    assert all(v.dtype == torch.bfloat16 and torch.equal(v, policy[k].to(torch.bfloat16))
               for k, v in sharded["bf16"].items())
    # The specs announced from the shards' metadata are exactly what the gathers then yield, in order
    assert sharded["announced"]["fp32"] == [(k, tuple(v.shape), v.dtype) for k, v in policy.items()]
    assert sharded["announced"]["bf16"] == [(k, tuple(v.shape), v.dtype) for k, v in sharded["bf16"].items()]
