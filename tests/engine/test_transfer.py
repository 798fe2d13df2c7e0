"""rlreason/engine/transfer.py on gloo, between real processes: the protocol the GPU path runs over NCCL.

The test process is learner rank 0 (the sender) unless a test needs two learner ranks; engines and the
other ranks are spawned (tests/engine/transfer_child.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest
import torch

from rlreason.engine.transfer import (
    NCCL_MARGIN_S,
    TransferError,
    WeightReceiver,
    WeightSender,
    group_timeout_s,
    plan,
    specs_of,
)
from tests.engine import transfer_child as child
from tests.engine.transfer_child import BUCKET, HOST, free_port, weights

SPAWN = multiprocessing.get_context("spawn")


def start(target, *args):
    proc = SPAWN.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def read(tmp_path, role: str) -> dict:
    return json.loads((tmp_path / f"{role}.json").read_text())


def assert_identical(received: dict[str, torch.Tensor], sent: dict[str, torch.Tensor]) -> None:
    assert list(received) == list(sent)
    for name, t in sent.items():
        r = received[name]
        assert (r.dtype, r.shape) == (t.dtype, t.shape), name
        assert torch.equal(r, t), name  # bit for bit: no NaNs in `weights`, so equal values are equal bits


def test_the_plan_packs_in_order_and_puts_a_tensor_over_a_bucket_alone():
    specs = specs_of(weights(1).items())
    buckets = plan(specs, BUCKET)
    assert [[specs[i].name for i in b] for b, _ in buckets] == [
        ["embed.weight", "norm.weight", "steps"], ["lm_head.weight"], ["scale", "mask", "bias"]]  # no "empty"
    assert [list(b.values()) for b, _ in buckets] == [[0, 64, 80], [0], [0, 16, 32]]  # 16-byte aligned offsets
    assert all(size <= BUCKET for b, size in buckets if len(b) > 1)


def test_weights_arrive_bit_identical_and_each_ack_carries_its_version(tmp_path):
    port = free_port()
    engine = start(child.engine, port, str(tmp_path), 2)
    sender = WeightSender(HOST, port, 1, timeout_s=20, join_s=60, bucket_bytes=BUCKET)
    try:
        assert sender.send(weights(7).items(), 7) == {1: 7}
        sent = weights(8)
        streamed = ((n, t) for n, t in sent.items())  # a generator, with the header from its specs
        assert sender.send(streamed, 8, specs=specs_of(sent.items())) == {1: 8}
        engine.join(30)
    finally:
        sender.close()
    record = read(tmp_path, "engine")
    assert record["error"] is None and record["versions"] == [7, 8]
    for version in (7, 8):
        assert_identical(torch.load(tmp_path / f"v{version}.pt"), weights(version))


def test_two_learner_ranks_pass_the_barrier_and_only_rank_0_sends(tmp_path):
    """Two spawned learner ranks (a gloo world of their own); this process is the engine."""
    port, dist_port = free_port(), free_port()
    procs = [start(child.learner, rank, dist_port, port, str(tmp_path), 3) for rank in (0, 1)]
    receiver = WeightReceiver(HOST, port, 1, 1, timeout_s=20, join_s=60, expected=specs_of(weights(0).items()))
    got, load_started = {}, []

    def load(tensors):
        load_started.append(time.time())
        got.update((name, t.clone()) for name, t in tensors)

    try:
        assert receiver.receive(load, wait_s=60) == 3
    finally:
        receiver.close()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    ranks = [read(tmp_path, f"learner{r}") for r in (0, 1)]
    assert [r["acks"] for r in ranks] == [{"1": 3}, {"1": 3}]  # rank 0's outcome, on both ranks
    assert [len(r["barriers"]) for r in ranks] == [1, 1]
    # Rank 1 came 1.5 s late: the engine heard of the version only after rank 1 was at the barrier.
    assert load_started[0] >= ranks[1]["barriers"][0]
    assert_identical(got, weights(3))


@pytest.mark.parametrize("when", ["before_the_sync", "mid_broadcast", "in_load"])
def test_a_killed_engine_is_a_clear_error_within_the_timeout(tmp_path, when):
    port, timeout_s = free_port(), 3.0
    engine = start(child.engine, port, str(tmp_path), 1, None if when == "before_the_sync" else when)
    sender = WeightSender(HOST, port, 1, timeout_s=timeout_s, join_s=60, bucket_bytes=BUCKET)
    try:
        if when == "before_the_sync":
            os.kill(engine.pid, signal.SIGKILL)
            engine.join(10)
        t0 = time.monotonic()
        with pytest.raises(TransferError) as err:
            sender.send(weights(5).items(), 5)
        elapsed = time.monotonic() - t0
        with pytest.raises(TransferError, match="closed after an earlier failure"):
            sender.send(weights(6).items(), 6)  # never into a broken group
    finally:
        sender.close()
    engine.join(10)
    assert engine.exitcode == -signal.SIGKILL
    if when == "mid_broadcast":  # gloo sees the closed socket: at once, not at a timeout
        assert "weights version 5 to engines [1] failed during broadcast" in str(err.value)
        assert elapsed < timeout_s
        return
    what = "did not take the header" if when == "before_the_sync" else "did not acknowledge"
    assert f"engine 1 {what} for weights version 5 within 3 s" in str(err.value)
    assert timeout_s <= elapsed < timeout_s + 3


def test_the_nccl_groups_timeout_is_well_above_the_senders_deadline(tmp_path):
    """NCCL's watchdog aborts the process when a collective outlives the group's timeout, and a broadcast to
    a dead engine is queued before the ack deadline starts: the group must outlast the deadline by the
    broadcast's time, so that the sender's TransferError (and its abort of the group) comes first. On gloo
    a broadcast blocks the sender, and its timeout is the deadline itself (it raises)."""
    assert group_timeout_s("nccl", 120.0) == 120.0 + NCCL_MARGIN_S >= 720.0
    assert group_timeout_s("nccl", 5.0) >= 5.0 + 600
    assert group_timeout_s("gloo", 5.0) == 5.0
    port = free_port()
    engine = start(child.engine, port, str(tmp_path), 1)
    sender = WeightSender(HOST, port, 1, timeout_s=7.0, join_s=60, bucket_bytes=BUCKET)
    try:
        assert sender.group.timeout_s == group_timeout_s("gloo", 7.0)  # what the group was built with
        assert sender.send(weights(1).items(), 1) == {1: 1}
    finally:
        sender.close()
        engine.join(30)


def test_the_dead_engine_gpu_check_runs_on_gloo(capsys):
    """tests/engine/transfer_child.py's dead_engine_check, a row of the GPU check over NCCL, on gloo here."""
    assert child.dead_engine_check("gloo", ("cpu", "cpu"), timeout_s=3.0) == 0
    assert "dead engine over gloo: OK" in capsys.readouterr().out


def test_fsdp_ranks_stream_the_first_sync_and_a_hung_engine_stops_both(tmp_path, tiny_model_dir):
    """Two learner ranks sync an FSDP-sharded model with its gathering iterator (a collective per tensor);
    this process is the engine. The first sync already streams: the header comes from the shards' metadata,
    and rank 0 gathers each tensor with rank 1 after the barrier, broadcasting bucket by bucket (listing
    the weights first would hold the model and, before the barrier, deadlock). Then the engine stops
    receiving: rank 0's deadline fires, it still gathers the rest in step with rank 1, and both ranks
    get the TransferError at once (not rank 1 stuck in a gather until the group's timeout)."""
    from safetensors.torch import load_file

    port, dist_port, timeout_s = free_port(), free_port(), 3.0
    procs = [start(child.fsdp_learner, rank, dist_port, port, str(tmp_path), tiny_model_dir, timeout_s)
             for rank in (0, 1)]
    receiver = WeightReceiver(HOST, port, 1, 1, timeout_s=20, join_s=120)
    got = {}
    try:
        assert receiver.receive(lambda tensors: got.update((n, t.clone()) for n, t in tensors), wait_s=120) == 1
        for p in procs:  # version 2 is announced, and never taken
            p.join(90)
    finally:
        receiver.close()
    assert [p.exitcode for p in procs] == [0, 0]
    ranks = [read(tmp_path, f"fsdp{r}") for r in (0, 1)]
    saved = load_file(f"{tiny_model_dir}/model.safetensors")
    assert_identical(got, {name: saved[name] for name in got})  # every tensor, in the model's order
    assert got.keys() == saved.keys()
    assert [r["outcomes"][0]["outcome"] for r in ranks] == [{"1": 1}, {"1": 1}]
    streamed = ranks[0]["sent_before_gather_1"]
    assert len(streamed) == len(got) and streamed[-1] == len(plan(specs_of(got.items()), BUCKET)) - 1
    for r in ranks:
        second = r["outcomes"][1]
        assert second["outcome"].startswith("TransferError: engine 1 did not take the header for weights "
                                            "version 2 within 3 s"), second
        assert second["seconds"] < timeout_s + 10, second


def test_a_header_that_does_not_match_the_engine_is_a_clear_error(tmp_path):
    port = free_port()
    expected = weights(0)
    expected["embed.weight"] = torch.zeros(4, 5)  # another shape
    del expected["mask"]  # and a tensor the engine does not have
    engine = start(child.engine, port, str(tmp_path), 1, None, expected)
    sender = WeightSender(HOST, port, 1, timeout_s=20, join_s=60, bucket_bytes=BUCKET)
    try:
        with pytest.raises(TransferError) as err:
            sender.send(weights(2).items(), 2)
        engine.join(30)
    finally:
        sender.close()
    msg = str(err.value)
    assert msg.startswith("engine 1 refused weights version 2: header mismatch")
    assert "unexpected (1): ['mask']" in msg
    assert "embed.weight: sent (3, 5) torch.float32, expected (4, 5) torch.float32" in msg
    assert "header mismatch" in read(tmp_path, "engine")["error"]  # the engine refused it too, and loaded nothing
    assert not list(tmp_path.glob("v*.pt"))
