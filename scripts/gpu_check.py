"""What rlreason runs on one GPU, checked in under 10 minutes; prints one table.

    scripts/gpu_check.sh [WHEEL_DIR]                    # on the GPU machine (see the .sh for the wheels)
    python scripts/gpu_check.py --device cpu --size tiny  # this script's own test, on a CPU (gloo, fp32)

Checks, each a row (result, seconds, peak allocated GiB, rlreason.distributed.memory's figure, notes):
  - torch sees the GPU (rlreason.cuda_check);
  - engine=hf rollouts on the device;
  - a GRPO+KL update in bf16 autocast with gradient checkpointing, asserting both are active (a decoder
    layer runs twice per training micro-batch: forward and recompute);
  - a PPO step with its critic;
  - packed attention: one padding-free row's log-probs equal the padded batch's (scripts/gpu_packed.py: flash-
    attention's varlen kernel where installed, bf16 tolerance stated there);
  - FSDP2 over NCCL at world size 1: the update on sharded models, every parameter a shard again after it,
    the weight sync gathered in bf16;
  - checkpoint and resume through torch.distributed.checkpoint: the resumed learner's next update equals
    the original's (both under torch's deterministic algorithms: CUDA's attention backward and cuBLAS are
    not deterministic by default);
  - the learner-to-engine weight transfer (rlreason/engine/transfer.py) to a second process, the one an
    engine on devices of its own would run: over NCCL from cuda:0 to cuda:1 when there are 2 GPUs, else
    over gloo on CUDA tensors (NCCL refuses two ranks on one device); two versions, bit for bit;
  - the real loop with vLLM, 2 iterations per engine placement (scripts/gpu_loop.py).
The model is a random Llama built here (no download): `small` is ~0.22 B parameters with a 32k vocabulary.
Peaks are torch's allocator (no CUDA context); the estimate is the same without its runtime allowance.
Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# cuBLAS is deterministic only with a fixed workspace, read when CUDA initialises: set it before anything
# here touches the GPU (importing torch does not). Only the resume check turns deterministic algorithms on.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

SIZES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4, vocab_size=512),
    "small": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=12, num_attention_heads=16,
                  num_key_value_heads=16, vocab_size=32000),
}
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def build_model(size: str, seq: int, out: Path) -> dict:
    """A random Llama and a word-level tokenizer of the same vocabulary, saved as an HF dir."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    arch = SIZES[size]
    vocab = {t: i for i, t in enumerate(SPECIALS + [f"w{i}" for i in range(arch["vocab_size"] - len(SPECIALS))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(**arch, max_position_embeddings=2 * seq, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(out)
    return json.loads((out / "config.json").read_text())


def episodes(n: int, seq: int, vocab: int, seed: int = 0):
    from rlreason.data.record import Question
    from rlreason.rollout import Episode

    g = torch.Generator().manual_seed(seed)
    prompt_len = seq // 4
    out = []
    for i in range(n):
        ids = torch.randint(len(SPECIALS), vocab, (seq,), generator=g).tolist()
        q = Question(id=f"q{i}", problem="p", answer="a")
        resp = ids[prompt_len:]
        out.append(Episode(q, ids[:prompt_len], resp, [0.0] * len(resp), "", "length", reward=float(i % 2),
                           advantages=[1.0 if i % 2 else -1.0] * len(resp)))
    return out


class Check:
    def __init__(self, args, model_dir: str, config: dict):
        self.args, self.model_dir, self.config = args, model_dir, config
        self.cuda = args.device == "cuda"
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.rows: list[dict] = []

    def run(self, name: str, fn, estimate_kwargs: dict | None = None) -> None:
        from rlreason.distributed.memory import estimate

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        row = {"check": name, "ok": False, "seconds": 0.0, "peak_gib": None, "estimate_gib": None, "note": ""}
        try:
            row["note"] = fn() or ""
            row["ok"] = True
        except Exception as e:  # a failed check is a row, the others still run
            row["note"] = f"{type(e).__name__}: {e}"[:300]
            traceback.print_exc()
        if self.cuda:
            torch.cuda.synchronize()
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        row["seconds"] = time.perf_counter() - t0
        if estimate_kwargs is not None:
            a = self.args
            est = estimate(self.config, gpus=1, micro_batch=a.micro_batch, seq=a.seq, engine_fraction=0.0,
                           **estimate_kwargs)
            row["estimate_gib"] = est["update_peak"] - est["runtime"]
        self.rows.append(row)

    def learner(self, algo: str, dist=None, checkpointing: bool = True):
        from rlreason.config import AlgoConfig, LearnerConfig
        from rlreason.distributed import SINGLE
        from rlreason.learner.learner import Learner

        a = self.args
        cfg = LearnerConfig(lr=1e-5, warmup_ratio=0.0, schedule="constant", epochs=1, minibatch_size=a.episodes,
                            micro_batch_size=a.micro_batch)
        return Learner(self.model_dir, cfg, AlgoConfig(name=algo, kl_coef=0.05), device=a.device, dtype=self.dtype,
                       total_updates=10, pad_id=0, temperature=1.0, gradient_checkpointing=checkpointing,
                       dist=dist or SINGLE)

    def eps(self, seed: int = 0):
        return episodes(self.args.episodes, self.args.seq, self.config["vocab_size"], seed)


def check_gpu(c: Check) -> str:
    from rlreason.cuda_check import current_problem, nvidia_driver

    if not c.cuda:
        return "cpu run: not checked"
    if (why := current_problem()) or not torch.cuda.is_available():
        raise RuntimeError(why or "torch.cuda.is_available() is False")
    p = torch.cuda.get_device_properties(0)
    return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, " \
           f"driver {nvidia_driver()}"


def check_rollouts(c: Check) -> str:
    from transformers import AutoTokenizer

    from rlreason.config import EngineConfig
    from rlreason.engine import SamplingParams
    from rlreason.engine.hf import HFEngine

    tok = AutoTokenizer.from_pretrained(c.model_dir)
    engine = HFEngine(EngineConfig(name="hf", hf_batch_size=32), c.model_dir, tok, dtype=str(c.dtype).split(".")[-1],
                      seed=0, max_model_len=c.args.seq, device=c.args.device)
    assert engine.model.device.type == c.args.device, engine.model.device
    prompts = [ep.prompt_ids for ep in c.eps()[:8]]
    t0 = time.perf_counter()
    groups = engine.generate(prompts, SamplingParams(n=4, temperature=1.0, max_tokens=64, seed=1))
    seconds = time.perf_counter() - t0
    done = [x for g in groups for x in g]
    assert [len(g) for g in groups] == [4] * len(prompts)
    assert all(x.token_ids and len(x.logprobs) == len(x.token_ids) and all(map(math.isfinite, x.logprobs))
               for x in done)
    tokens = sum(len(x.token_ids) for x in done)
    engine.close()
    return f"{len(done)} samples, {tokens / seconds:.0f} tokens/s"


def count_layer_calls(learner):
    """Calls of the first decoder layer in train mode (the update's micro-batches), in a one-item list."""
    from rlreason.distributed.fsdp import _layers

    calls = [0]

    def hook(module, args):
        if module.training:
            calls[0] += 1

    _layers(learner.policy)[0].register_forward_pre_hook(hook)
    return calls


def check_update(c: Check) -> str:
    learner = c.learner("grpo")
    calls = count_layer_calls(learner)
    metrics = learner.update(c.eps())
    micro = c.args.episodes // c.args.micro_batch
    assert learner.autocast == c.cuda, "bf16 autocast is on exactly on the GPU"
    assert learner.policy.is_gradient_checkpointing
    assert calls[0] == 2 * micro, f"layer 0 ran {calls[0]} times in {micro} micro-batches: checkpointing is off"
    assert learner.version == 1 and math.isfinite(metrics["pg_loss"]) and math.isfinite(metrics["kl_ref"])
    return f"autocast {'bf16' if learner.autocast else 'off'}, checkpointing on ({calls[0]} layer calls / {micro})"


def check_ppo(c: Check) -> str:
    learner = c.learner("ppo")
    head = next(learner.critic.head.parameters()).detach().clone()
    metrics = learner.update(c.eps())
    assert learner.critic.backbone.is_gradient_checkpointing
    assert math.isfinite(metrics["value_loss"]) and not torch.equal(head, next(learner.critic.head.parameters()))
    return f"value_loss {metrics['value_loss']:.3g}, critic stepped"


def world_of_one(group):
    """A Dist of world size 1 that still takes the sharded path (rlreason.distributed.Dist.active is
    world > 1): FSDP2, DTensor shards and the DCP checkpoint, without a second GPU."""
    from rlreason.distributed import Dist

    class Sharded(Dist):
        @property
        def active(self) -> bool:
            return True

    return Sharded(0, 1, 0, group)


def init_world(c: Check):
    import torch.distributed as dist

    from rlreason.distributed import free_port

    if not dist.is_initialized():
        port = free_port()
        kwargs = {"device_id": torch.device("cuda", 0)} if c.cuda else {}
        dist.init_process_group("nccl" if c.cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                                world_size=1, **kwargs)
    return world_of_one(dist.new_group(backend="gloo"))


def check_fsdp(c: Check, state: dict) -> str:
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    world = init_world(c)
    learner = c.learner("grpo", dist=world)
    metrics = learner.update(c.eps())
    plain = [n for m in (learner.policy, learner.ref) for n, p in m.named_parameters() if not isinstance(p, DTensor)]
    assert not plain, f"not shards after the update: {plain[:3]}"
    synced = list(learner.named_weights())
    assert all(t.dtype == c.dtype for _, t in synced), "the sync gathers in the engine's dtype"
    assert math.isfinite(metrics["pg_loss"]) and learner.version == 1
    state.update(learner=learner, world=world)
    return f"backend {dist.get_backend()}, {len(synced)} tensors synced in {str(c.dtype).split('.')[-1]}"


@contextlib.contextmanager
def deterministic():
    """torch's deterministic algorithms inside the block. Not warn_only: with it, PyTorch keeps the
    non-deterministic flash and memory-efficient attention backward (it reads the flag inside) and may pick
    cuDNN's attention; without it an op that has no deterministic implementation raises, naming itself."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def check_resume(c: Check, state: dict) -> str:
    from rlreason.distributed import checkpoint as dcp
    from rlreason.distributed.fsdp import full_weights

    learner, world = state["learner"], state["world"]

    def learner_state(x):
        return dcp.LearnerState({"policy": x.policy}, [x.optimizer])

    with tempfile.TemporaryDirectory() as tmp:
        run_state = {"learner": {k: v for k, v in learner.state_dict().items() if "optimizer" not in k}}
        path = dcp.save(Path(tmp), 1, learner_state(learner), run_state, world)
        resumed = c.learner("grpo", dist=world)
        resumed.load_state_dict(torch.load(path / "trainer_state.pt", weights_only=False)["learner"],
                                optimizers=False)
        dcp.load(path, learner_state(resumed))
    a, b = dict(full_weights(learner.policy)), dict(full_weights(resumed.policy))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed weights differ"
    batch = c.eps(seed=1)
    # The same update on the same state: deterministic kernels make it bit for bit the same. The 1e-6 margin
    # is well below what a resume fault moves (a lost Adam state: up to ~lr = 1e-5 a weight, in one step).
    with deterministic():
        learner.update(batch)
        resumed.update(batch)
    a, b = dict(full_weights(learner.policy)), dict(full_weights(resumed.policy))
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6, f"the next update after resuming differs by {worst:.3g}"
    return f"DCP round trip exact; next update within {worst:.1g} (deterministic algorithms)"


def transfer_weights(model_dir: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The check model's weights in the engine's dtype; version v sends them times v (each version differs;
    times 1 and 2 are exact in any float dtype, so both sides compute the same bits)."""
    from safetensors.torch import load_file

    return {k: v.to(dtype) for k, v in load_file(f"{model_dir}/model.safetensors").items()}




def check_transfer(c: Check) -> str:
    from rlreason.engine.transfer import WeightSender

    if c.cuda and torch.cuda.device_count() >= 2:
        backend, (src, dst), why = "nccl", ("cuda:0", "cuda:1"), "2 GPUs"
    elif c.cuda:
        backend, (src, dst), why = "gloo", ("cuda:0", "cuda:0"), "1 GPU: NCCL refuses two ranks on one device"
    else:
        backend, (src, dst), why = "gloo", ("cpu", "cpu"), "--device cpu"
    if c.cuda:
        torch.cuda.set_device(torch.device(src))
    from rlreason.distributed import free_port

    port, dtype = free_port(), str(c.dtype).removeprefix("torch.")
    base = transfer_weights(c.model_dir, c.dtype)
    sizes = [t.nbytes for t in base.values()]
    bucket = max(sizes) // 2  # the largest tensors go alone, the others share buckets
    receiver = subprocess.Popen([sys.executable, __file__, "--transfer-receiver", c.model_dir, str(port), backend,
                                 dst, dtype])
    try:
        sender = WeightSender("127.0.0.1", port, 1, backend=backend, device=src, timeout_s=60, join_s=180,
                              bucket_bytes=bucket)
        try:
            for version in (1, 2):
                weights = {k: v.to(src) * version for k, v in base.items()}
                t0 = time.perf_counter()
                acks = sender.send(weights.items(), version)
                seconds = time.perf_counter() - t0
                assert acks == {1: version}, acks
        finally:
            sender.close()
        assert receiver.wait(60) == 0, f"the receiver exited with {receiver.returncode}"
    finally:
        if receiver.poll() is None:
            receiver.kill()
    return (f"{backend} {src} -> {dst} ({why}): {len(sizes)} tensors, {sum(sizes) / 2**20:.1f} MiB in "
            f"{seconds:.2f} s, {bucket / 2**20:.1f} MiB buckets, bit for bit")


def transfer_receiver(model_dir: str, port: str, backend: str, device: str, dtype: str) -> int:
    """The engine's end of check_transfer, in its own process: each version must equal its own copy."""
    from rlreason.engine.transfer import WeightReceiver, specs_of

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    base = transfer_weights(model_dir, getattr(torch, dtype))
    receiver = WeightReceiver("127.0.0.1", int(port), 1, 1, backend=backend, device=device, timeout_s=60,
                              join_s=180, expected=specs_of(base.items()))
    for version in (1, 2):
        want = {k: v * version for k, v in base.items()}

        def load(tensors, want=want):
            differ = [name for name, t in tensors if not torch.equal(t.cpu(), want[name])]
            assert not differ, f"received tensors differ from the sent ones: {differ[:3]}"

        assert receiver.receive(load, wait_s=300) == version
    receiver.close()
    return 0


def table(rows: list[dict]) -> str:
    def gib(x):
        return "-" if x is None else f"{x:.2f}"

    lines = [f"{'check':<38} {'result':<6} {'s':>6} {'peak GiB':>9} {'est. GiB':>9}  note"]
    for r in rows:
        lines.append(f"{r['check']:<38} {'ok' if r['ok'] else 'FAIL':<6} {r['seconds']:>6.1f} {gib(r['peak_gib']):>9} "
                     f"{gib(r['estimate_gib']):>9}  {r['note']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--size", choices=tuple(SIZES), default="small")
    ap.add_argument("--seq", type=int, default=1024, help="tokens per episode (a quarter of them prompt)")
    ap.add_argument("--episodes", type=int, default=16, help="episodes per update (one minibatch)")
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--loop", choices=("all", "none", "first", "lora"), default="all",
                    help="the loop rows (scripts/gpu_loop.py: vLLM, 2 iterations each): all, none, the first, or "
                         "the LoRA ones (both sync ways)")
    ap.add_argument("--loop-timeout", type=float, default=150, help="seconds per loop row")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        config = build_model(args.size, args.seq, Path(tmp))
        c = Check(args, tmp, config)
        state: dict = {}
        c.run("torch sees the GPU", lambda: check_gpu(c))
        c.run("engine=hf rollouts", lambda: check_rollouts(c))
        c.run("update: bf16 autocast + checkpointing", lambda: check_update(c), {"fsdp": False})
        c.run("PPO step with its critic", lambda: check_ppo(c), {"fsdp": False, "critic": True})
        sys.path.insert(0, str(ROOT / "scripts"))
        from gpu_packed import check_packed

        c.run("packed attention = padded log-probs", lambda: check_packed(c))
        c.run("FSDP2 update, world size 1", lambda: check_fsdp(c, state), {"fsdp": True})
        c.run("DCP checkpoint and resume", lambda: check_resume(c, state))  # two learners alive: no estimate
        c.run("weight transfer to an engine process", lambda: check_transfer(c))
        from gpu_loop import loop_rows

        loop_rows(c, args.loop, args.device, Path(tmp), args.loop_timeout)
    print(f"\nrlreason GPU check: device {args.device}, model {args.size} "
          f"({json.dumps({k: config[k] for k in SIZES[args.size]})}), seq {args.seq}, "
          f"{args.episodes} episodes / update, micro-batch {args.micro_batch}")
    print(table(c.rows))
    print("gpu-check " + json.dumps(c.rows), flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0 if all(r["ok"] for r in c.rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if sys.argv[1:2] == ["--transfer-receiver"]:  # check_transfer's second process
        sys.exit(transfer_receiver(*sys.argv[2:]))
    sys.exit(main())
