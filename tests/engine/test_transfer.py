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

from rlreason.engine.transfer import TransferError, WeightReceiver, WeightSender, plan, specs_of
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


@pytest.mark.parametrize("when", ["before_the_sync", "in_load"])
def test_a_killed_engine_is_a_clear_error_within_the_timeout(tmp_path, when):
    port, timeout_s = free_port(), 3.0
    engine = start(child.engine, port, str(tmp_path), 1, "in_load" if when == "in_load" else None)
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
    what = "did not take the header" if when == "before_the_sync" else "did not acknowledge"
    assert f"engine 1 {what} for weights version 5 within 3 s" in str(err.value)
    assert timeout_s <= elapsed < timeout_s + 3


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
