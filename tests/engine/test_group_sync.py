"""engine.weight_transfer=group on CPU (gloo): a real vLLM engine process takes its weights over the transfer
group, and engine.devices is validated before anything starts.

The engine test runs one child process (tests/engine/group_sync_child.py: one engine start, 20-30 s), since
a second engine cannot start in the test session's process (tests/conftest.py). The torchrun test launches
two 2-rank runs with engines in processes of their own (~2-4 min on a busy 2-core machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlreason.config import ConfigError, EngineConfig
from rlreason.engine import devices
from tests.distributed.test_torchrun import metrics, torchrun
from tests.trainer.conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def group_run(tiny_model_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("group-sync") / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))  # this checkout's rlreason
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("group_sync_child.py")), tiny_model_dir,
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.vllm
@pytest.mark.slow
def test_weights_over_the_group_give_the_file_paths_tokens_and_logprobs(group_run):
    run = group_run
    assert run["acks"] == [{"1": 1}, {"1": 2}]  # engine 1 (group rank 1) acknowledged each version
    assert run["group_a"] == run["file_a"]  # same tokens, same log-probs, to the bit
    assert run["group_a"]["tokens"] == run["reference_a"]  # and what the fp32 learner decodes greedily
    assert run["group_b"]["tokens"] != run["group_a"]["tokens"]  # version 2 really was loaded


@pytest.mark.vllm
@pytest.mark.slow
def test_a_killed_engine_process_is_a_clear_error_within_the_timeout(group_run):
    errors = group_run["errors"]
    # The client's flag hidden: the sender's deadline (transfer_timeout_s = 5 s) catches the dead engine.
    hidden = errors["flag_hidden"]
    assert hidden["error"].startswith("TransferError: engine 1 did not take the header for weights version 3 "
                                      "within 5 s"), hidden
    assert "the vLLM engine process died" in hidden["error"]
    assert 5 <= hidden["seconds"] < 9, hidden
    # As is: the client already knows, so the sync fails at once.
    assert "the vLLM engine process died" in errors["as_is"]["error"] and errors["as_is"]["seconds"] < 1


# Two ranks, each with an engine process of its own, 2 iterations of VinePPO, a small eval at iteration 2. A
# collective that waits 240 s fails the run: a deadlock at the first sync is an error, not a 30 min hang.
TORCHRUN = [*SMALL, "engine.separate_process=true", "engine.cpu_threads=1", "trainer.eval_max_questions=4",
            "trainer.eval_samples=1", "distributed.timeout_s=240"]


@pytest.mark.vllm
@pytest.mark.slow
def test_torchrun_over_the_group_logs_the_file_paths_metrics(tmp_path):
    """FSDP's gathering iterator under the group: rank 0 announces the header from the shards' metadata and
    gathers with the other ranks after the barrier (listing the weights before it deadlocked: its gathers
    need every rank). The weights arrive as exact bytes either way, so every metric but timings is equal."""
    logged = {}
    for transfer in ("group", "file"):
        proc, seconds = torchrun(tmp_path / transfer, 2, tmp_path / "cache", timeout=900,
                                 overrides=[*TORCHRUN, f"engine.weight_transfer={transfer}"])
        assert proc.returncode == 0, f"{transfer} after {seconds:.0f} s: {(proc.stdout + proc.stderr)[-3000:]}"
        logged[transfer] = metrics(tmp_path / transfer)
    assert sorted(logged["group"]) == sorted(logged["file"]) == [0, 1, 2]
    for it, row in logged["file"].items():
        kept = {k: v for k, v in row.items() if not k.startswith("time/")}
        assert {k: v for k, v in logged["group"][it].items() if not k.startswith("time/")} == kept, it
    assert "eval/accuracy" in logged["group"][2] and "learner/logprob_mismatch" in logged["group"][1]


def cfg(**kw) -> EngineConfig:
    base = dict(name="vllm", separate_process=True, weight_transfer="group")
    return EngineConfig(**{**base, **kw})


def test_engine_devices_follow_the_rule_one_engine_per_local_rank():
    """--nproc-per-node=4 on 8 GPUs: learners on 0..3, local rank r's engine on devices[r]."""
    c = cfg(devices=[4, 5, 6, 7])
    assert [devices.rank_devices(c, local_rank=r, world=8, local_world=4, gpus=8) for r in range(4)] == [
        [4], [5], [6], [7]]
    one = cfg(devices=[1, 2], tensor_parallel_size=2)  # one process: a 2-GPU engine beside the learner's GPU 0
    assert devices.rank_devices(one, local_rank=0, world=1, local_world=1, gpus=4) == [1, 2]
    shared = cfg(weight_transfer="file")  # the group would need GPUs of its own (test below)
    assert devices.rank_devices(shared, local_rank=3, world=8, local_world=4, gpus=8) is None  # shares rank's GPU


def test_visible_devices_translate_through_the_parents_cuda_visible_devices():
    assert devices.visible_devices([1], {}) == "1"
    assert devices.visible_devices([1, 3], {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}) == "5,7"


@pytest.mark.parametrize(("kw", "layout", "message"), [
    (dict(devices=[1, 2, 3, 4]), dict(local_world=4, gpus=8), "overlaps the learners' GPUs [0, 1, 2, 3] (local rank "
                                                              "r learns on GPU r) at [1, 2, 3]"),
    (dict(devices=[4, 5, 6, 8]), dict(local_world=4, gpus=8), "[8] past this node's 8 GPUs (0..7)"),
    (dict(devices=[4, 5]), dict(local_world=4, gpus=8), "must list 4 GPUs"),
    (dict(devices=[4, 4, 5, 6]), dict(local_world=4, gpus=8), "lists a GPU twice"),
    (dict(devices=[1]), dict(local_world=1, gpus=0), "lists GPUs, but this run sees none (CPU): leave it null"),
    (dict(devices=[1], separate_process=False, weight_transfer="file"), dict(local_world=1, gpus=2),
     "needs engine=vllm with engine.separate_process=true"),
    (dict(devices=[4, 5, 6, 7, 8, 9, 10, 11], tensor_parallel_size=2), dict(local_world=4, gpus=16),
     "under torchrun is not built"),
    (dict(weight_transfer="nccl"), dict(local_world=1, gpus=0), "engine.weight_transfer='nccl' is not one of file, group"),
    (dict(separate_process=False), dict(local_world=1, gpus=0), "engine.weight_transfer=group needs engine=vllm with "
                                                                "engine.separate_process=true"),
    (dict(transfer_timeout_s=0), dict(local_world=1, gpus=0), "engine.transfer_timeout_s=0 must be > 0"),
])
def test_engine_devices_and_weight_transfer_are_checked_before_anything_starts(kw, layout, message):
    world = layout["local_world"]
    with pytest.raises(ConfigError) as err:
        devices.rank_devices(cfg(**kw), local_rank=0, world=world, **layout)
    assert message in str(err.value)


@pytest.mark.parametrize(("kw", "layout", "refused"), [
    (dict(), dict(world=1, local_world=1, gpus=1), True),  # one GPU: the engine can only share it
    (dict(), dict(world=4, local_world=4, gpus=8), True),
    (dict(tensor_parallel_size=2), dict(world=1, local_world=1, gpus=4), True),  # vLLM's workers on GPUs 0-1
    (dict(devices=[1]), dict(world=1, local_world=1, gpus=2), False),  # a GPU of its own
    (dict(devices=[4, 5, 6, 7]), dict(world=4, local_world=4, gpus=8), False),
    (dict(weight_transfer="file"), dict(world=1, local_world=1, gpus=1), False),  # CUDA IPC-free file path
    (dict(), dict(world=1, local_world=1, gpus=0), False),  # CPU: gloo, no GPU to share
    (dict(), dict(world=2, local_world=2, gpus=0), False),
])
def test_the_group_with_the_engine_on_its_learners_gpu_is_refused(kw, layout, refused):
    """NCCL takes one rank of a communicator per GPU: learner rank 0 and an engine on its GPU in the transfer
    group stop the first sync with "Duplicate GPU detected". Decided from the config and the GPU count."""
    found = devices.problems(cfg(**kw), **layout)
    assert bool(found) == refused, found
    if refused:
        assert len(found) == 1 and "engine.weight_transfer=group with the engine process on its learner's GPU" in found[0]
        assert "Duplicate GPU detected" in found[0] and "engine.weight_transfer=file" in found[0]
        with pytest.raises(ConfigError):  # and where the engine is built (rlreason/engine/_vllm_compat.py)
            devices.rank_devices(cfg(**kw), local_rank=0, **layout)


def test_the_refusal_names_engine_gpus_that_exist():
    four = devices.problems(cfg(), world=4, local_world=4, gpus=8)[0]
    assert "e.g. engine.devices=[4, 5, 6, 7]" in four
    full = devices.problems(cfg(), world=4, local_world=4, gpus=4)[0]
    assert "8 GPUs on the node for 4 learner rank(s) and their engines: this node has 4" in full


def test_validate_refuses_the_group_on_the_learners_gpu(monkeypatch):
    """Before anything starts, as one `invalid config:` line (rlreason.run prints it after `rlreason:`)."""
    from rlreason.validate import validate
    from tests.test_errors import compose_cfg

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(devices, "gpu_count", lambda: 1)
    c = compose_cfg("engine=vllm", "engine.separate_process=true", "engine.weight_transfer=group", "device=cuda")
    with pytest.raises(ConfigError, match=r"^invalid config: engine.weight_transfer=group with the engine process on "
                                          r"its learner's GPU \(engine.devices unset\)") as err:
        validate(c)
    assert "\n" not in str(err.value)


def test_validate_refuses_engine_devices_on_cpu(monkeypatch):
    from rlreason.validate import validate
    from tests.test_errors import compose_cfg

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    c = compose_cfg("engine=vllm", "engine.separate_process=true", "engine.devices=[1]", "device=cpu")
    with pytest.raises(ConfigError, match=r"engine.devices=\[1\] lists GPUs, but this run sees none"):
        validate(c)


@pytest.mark.vllm
def test_a_gpu_engine_process_is_spawned_on_its_ranks_engine_device(monkeypatch):
    """build_llm's GPU branch, faked (on_cpu() False, 8 GPUs, local rank 2 of 4 under torchrun, vllm.LLM
    recorded): the engine process is spawned seeing GPU devices[2] only, on vLLM's own executor (not the
    external launcher, which would join the learners' world), with the transfer's worker extension."""
    import torch
    import vllm

    from rlreason.engine import _vllm_compat as compat

    built = {}
    monkeypatch.setattr(compat, "on_cpu", lambda: False)
    monkeypatch.setattr(devices, "gpu_count", lambda: 8)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(vllm, "LLM", lambda **kw: built.update(kw, visible=os.environ.get("CUDA_VISIBLE_DEVICES")))
    for key, value in dict(WORLD_SIZE="8", LOCAL_WORLD_SIZE="4", LOCAL_RANK="2", CUDA_VISIBLE_DEVICES="0,1,2,3,8,9,10,11"
                           ).items():
        monkeypatch.setenv(key, value)
    compat.build_llm(cfg(devices=[4, 5, 6, 7]), "model", "model", dtype="bfloat16", seed=0, max_model_len=256)
    assert built["visible"] == "10"  # index 6 of the GPUs this process sees
    assert "distributed_executor_backend" not in built
    assert built["worker_extension_cls"] == "rlreason.engine.worker_ext.TransferWorkerExtension"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,8,9,10,11"  # the learner's own view is left as it was
