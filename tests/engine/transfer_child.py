"""Processes of test_transfer.py (spawned): an engine that receives weights, learner ranks that send them
(plain tensors, or an FSDP-sharded model's gathering iterator).

Each writes what it saw to OUT/<role>.json (and the tensors it received to OUT/v<version>.pt)."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

import torch

from rlreason import distributed

HOST = "127.0.0.1"
BUCKET = 4096  # bytes: "big" (16 KiB) goes alone, the small ones share buckets


def free_port() -> int:
    return distributed.free_port(HOST)


def weights(version: int) -> dict[str, torch.Tensor]:
    """Several dtypes and shapes, different values per version: a tensor over a bucket, a 0-d scalar, an
    empty one, and tensors of 2 and 1 bytes an element between 4- and 8-byte ones (alignment)."""
    g = torch.Generator().manual_seed(version)
    return {
        "embed.weight": torch.randn(3, 5, generator=g),
        "norm.weight": torch.randn(7, generator=g).to(torch.bfloat16),
        "steps": torch.randint(-2**40, 2**40, (4, 2), generator=g),
        "lm_head.weight": torch.randn(64, 64, generator=g),
        "scale": torch.tensor(float(version) + 0.5),
        "empty": torch.empty(0, 3),
        "mask": torch.rand(5, generator=g) > 0.5,
        "bias": torch.randn(2, 3, generator=g).to(torch.bfloat16).t(),  # not contiguous
    }


def engine(port: int, out: str, syncs: int, kill: str | None = None, expected: dict | None = None,
           backend: str = "gloo", device: str = "cpu") -> None:
    """Receive `syncs` versions. kill="in_load": SIGKILL itself after taking the tensors, before acking;
    "mid_broadcast": after the first tensor, while the sender still has buckets to broadcast."""
    from rlreason.engine.transfer import WeightReceiver, specs_of

    torch.set_num_threads(1)
    record: dict = {"versions": [], "load_started": [], "error": None}
    path = Path(out) / "engine.json"
    try:
        receiver = WeightReceiver(HOST, port, 1, 1, backend=backend, device=device, timeout_s=20, join_s=60,
                                  expected=specs_of((expected or weights(0)).items()))
        for _ in range(syncs):
            got: dict[str, torch.Tensor] = {}

            def load(tensors, got=got):
                record["load_started"].append(time.time())
                for name, t in tensors:
                    got[name] = t.to("cpu", copy=True)
                    if kill == "mid_broadcast":
                        os.kill(os.getpid(), signal.SIGKILL)
                if kill == "in_load":
                    os.kill(os.getpid(), signal.SIGKILL)

            version = receiver.receive(load, wait_s=60)
            record["versions"].append(version)
            torch.save(got, Path(out) / f"v{version}.pt")
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {e}"
    path.write_text(json.dumps(record))


def learner(rank: int, dist_port: int, port: int, out: str, version: int) -> None:
    """One of two learner ranks (their own gloo world); rank 1 reaches the sync 1.5 s after rank 0."""
    import torch.distributed as dist

    from rlreason.distributed import Dist
    from rlreason.engine.transfer import WeightSender, send_weights

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://{HOST}:{dist_port}", rank=rank, world_size=2)
    barriers: list[float] = []

    class Recorded(Dist):
        def barrier(self) -> None:
            barriers.append(time.time())
            super().barrier()

    learner_dist = Recorded(rank, 2, 0, dist.new_group(backend="gloo"))
    sender = WeightSender(HOST, port, 1, timeout_s=20, join_s=60, bucket_bytes=BUCKET) if rank == 0 else None
    if rank == 1:
        time.sleep(1.5)
    acks = send_weights(learner_dist, sender, weights(version).items(), version)
    (Path(out) / f"learner{rank}.json").write_text(json.dumps({"barriers": barriers, "acks": acks}))
    dist.destroy_process_group()


def fsdp_learner(rank: int, dist_port: int, port: int, out: str, model_dir: str, timeout_s: float) -> None:
    """One of two learner ranks holding the tiny model sharded with FSDP2 (gloo), syncing it with its real
    gathering iterator (`FullWeights`, as `Learner.named_weights`) twice: version 1 to the engine, version
    2 to an engine that no longer receives. Records, on rank 0, how many buckets had been broadcast when
    each tensor was gathered (streamed: all but the last; listed first: none), and each rank's outcome.
    Every collective gives up after 60 s: a deadlock is an error in the record, not a hung test."""
    from datetime import timedelta

    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    from rlreason.distributed import Dist
    from rlreason.distributed.fsdp import FullWeights, shard_model
    from rlreason.engine.transfer import WeightSender, send_weights

    torch.set_num_threads(1)
    limit = timedelta(seconds=60)
    dist.init_process_group("gloo", init_method=f"tcp://{HOST}:{dist_port}", rank=rank, world_size=2, timeout=limit)
    learner_dist = Dist(rank, 2, 0, dist.new_group(backend="gloo", timeout=limit))
    model = shard_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), learner_dist,
                        device="cpu", mixed_precision=False)
    sender = WeightSender(HOST, port, 1, timeout_s=timeout_s, join_s=60, bucket_bytes=BUCKET) if rank == 0 else None
    broadcasts = [0]
    if sender is not None:
        bcast = sender.group.bcast

        def counted(t):
            broadcasts[0] += 1
            return bcast(t)

        sender.group.bcast = counted
    record: dict = {"sent_before_gather": [], "outcomes": []}

    class Recorded(FullWeights):
        def __iter__(self):
            for item in super().__iter__():
                record["sent_before_gather"].append(broadcasts[0])
                yield item

    for version in (1, 2):
        record["sent_before_gather"] = []
        t0 = time.monotonic()
        try:
            outcome = send_weights(learner_dist, sender, Recorded(model), version)
        except Exception as e:  # noqa: BLE001 - reported to the test
            outcome = f"{type(e).__name__}: {e}"
        record["outcomes"].append({"outcome": outcome, "seconds": time.monotonic() - t0})
        record[f"sent_before_gather_{version}"] = record.pop("sent_before_gather")
    (Path(out) / f"fsdp{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


def dead_engine_check(backend: str = "nccl", devices: tuple[str, str] = ("cuda:0", "cuda:1"),
                      timeout_s: float = 5.0, margin_s: float = 10.0) -> int:
    """A GPU check (2 GPUs, no vLLM, no pytest), also run on gloo/CPU by test_transfer.py:

        python -c "import sys; from tests.engine.transfer_child import dead_engine_check as c; sys.exit(c())"

    An engine on devices[1] SIGKILLs itself mid-broadcast. Learner rank 0 (devices[0]) must get a
    TransferError within the deadline, abort the group, and live on past the group's timeout (shortened
    here to deadline + `margin_s`): NCCL's watchdog, which aborts the process when a collective outlives
    that timeout, must neither fire first nor after the abort. Prints one line; 0 when all held."""
    import multiprocessing

    import rlreason.engine.transfer as transfer

    transfer.NCCL_MARGIN_S = margin_s
    out = tempfile.mkdtemp(prefix="rlreason-dead-engine-")
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(
        target=engine, args=(port, out, 1, "mid_broadcast", None, backend, devices[1]), daemon=True)
    proc.start()
    sender = transfer.WeightSender(HOST, port, 1, backend=backend, device=devices[0], timeout_s=timeout_s,
                                   join_s=180, bucket_bytes=BUCKET)
    t0 = time.monotonic()
    try:
        sender.send(weights(5).items(), 5)
        error = None
    except transfer.TransferError as e:
        error = str(e)
    elapsed = time.monotonic() - t0
    time.sleep(transfer.group_timeout_s(backend, timeout_s) + 5)  # the watchdog's moment, and after
    proc.join(10)
    ok = error is not None and elapsed < timeout_s + 5 and proc.exitcode == -signal.SIGKILL
    print(f"dead engine over {backend}: {'OK' if ok else 'FAIL'}: TransferError after {elapsed:.1f} s "
          f"({error}); learner alive {transfer.group_timeout_s(backend, timeout_s) + 5:g} s on", flush=True)
    return 0 if ok else 1
