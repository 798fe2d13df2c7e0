"""The GPU check's loop rows: the real training loop (`python -m rlreason.run`, vLLM engine) for 2 iterations
with the embedded tiny model, once per engine placement a first GPU run is likely to break:

  - in-process engine with sleep mode (the presets' setting: the engine frees its memory for the update);
  - `engine.separate_process=true` (the engine core in its own process: vLLM must spawn it, not fork after
    torch touched CUDA; issue 31, 2a);
  - `trainer.async_level=1` (the producer thread must run on the rank's CUDA device; 2b);
  - LoRA (learner.lora, docs/lora.md), each sync way: merged weights loaded in place, and vLLM's own LoRA
    (`learner.lora.sync=adapter`: enable_lora, a LoRARequest per version, punica kernels on CUDA), in fp32
    and in bf16 (model.dtype=bfloat16: the engine in bf16, the learner's fp32 master weights under autocast).

Each row checks the run's exit status, that every iteration was logged, that nothing is NaN, and that the
engine's log-probs match the learner's (`learner/logprob_mismatch`, mean |log p_engine - log p_learner| per
token: ~1e-7 in fp32 on the CPU; the tiny model runs fp32 on GPUs too, conf/model/tiny.yaml).
Without vLLM installed the rows fail and say so: they are what the other rows cannot show.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ITERATIONS = 2
# Small enough for minutes on a CPU, big enough that every phase (MC included) does real work.
SMALL = [f"trainer.iterations={ITERATIONS}", "trainer.questions_per_iteration=4", "rollout.samples_per_question=4",
         "learner.minibatch_size=16", "learner.micro_batch_size=16", "trainer.eval_max_questions=8",
         "trainer.eval_samples=1", f"trainer.eval_every={ITERATIONS}", "trainer.checkpoint_every=1",
         "algo.mc_rollouts=2", "trainer.progress=false", "resume=never"]
ROWS = {
    "loop: in-process engine, sleep mode": ["engine.sleep_mode=true"],
    "loop: engine.separate_process": ["engine.separate_process=true"],
    "loop: one step off (async_level=1)": ["trainer.async_level=1"],
    "loop: LoRA r=16, merged sync": ["learner.lora.r=16", "learner.lr=3e-4", "learner.lora.sync=merged"],
    "loop: LoRA r=16, adapter sync": ["learner.lora.r=16", "learner.lr=3e-4", "learner.lora.sync=adapter"],
    "loop: LoRA r=16, adapter sync, bf16": ["learner.lora.r=16", "learner.lr=3e-4", "learner.lora.sync=adapter",
                                            "model.dtype=bfloat16"],
}
LORA_ROWS = [name for name in ROWS if name.startswith("loop: LoRA")]
# The one-GPU recipes (issue 32): each composes (what `--cfg job` prints); with RLREASON_GPU_MODEL=DIR (a local
# model of the recipe's family: no network there) it also runs 2 iterations of the recipe on that model, at
# the recipe's own response budget and chat template, with the loop's sizes cut to SMALL's.
RECIPES = {
    "recipe: gsm8k_qwen05b": ["experiment=gsm8k_qwen05b"],
    "recipe: math_qwen15b": ["experiment=math_qwen15b",  # MATH's train split comes from the Hub: use MATH-500's
                             "data.train_path=${oc.env:RLREASON_DATA,../shared/data}/math500_test.jsonl"],
    "recipe: countdown_qwen15b": ["experiment=countdown_qwen15b"],
}
MISMATCH_MAX = 1e-3  # fp32 on both sides: anything near this is a wrong weight or a wrong token, not rounding
# bf16 (the engine's weights and activations, the learner's autocast): bf16 keeps 8 bits of mantissa (relative
# rounding 2^-9 = 2e-3 per value) and the two sides round in different places (vLLM's fused / punica kernels,
# the learner's fp32 logits), so a mean per-token |delta log p| of ~1e-3 to 1e-2 is rounding; 5e-2 is not.
# Not measured here (no GPU): the row reports the figure, the first GPU run tells how close it sits.
MISMATCH_MAX_BF16 = 5e-2


def tolerance(name: str) -> float:
    return MISMATCH_MAX_BF16 if "model.dtype=bfloat16" in ROWS[name] else MISMATCH_MAX


def run_dir_of(tmp: Path, name: str) -> Path:
    """A row's run dir: its name with every character Hydra's override grammar could trip on replaced."""
    return tmp / "".join(ch if ch.isalnum() else "_" for ch in name)


def run_loop(name: str, device: str, tmp: Path, timeout_s: float = 240) -> str:
    if importlib.util.find_spec("vllm") is None:
        raise RuntimeError("vllm is not installed: `pip install vllm` (GPU) or `make setup` (CPU) to run the loop")
    run_dir = run_dir_of(tmp, name)
    cmd = [sys.executable, "-m", "rlreason.run", *SMALL, *ROWS[name], f"device={device}", f"hydra.run.dir={run_dir}",
           f"cache_dir={tmp / 'cache'}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = [x for x in proc.stderr.splitlines() if x.strip()][-3:]
        raise RuntimeError(f"exit {proc.returncode}: {' | '.join(tail)}")
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in rows if "learner/logprob_mismatch" in r]
    assert len(train) == ITERATIONS, f"{len(train)} iterations logged, not {ITERATIONS}"
    bad = sorted({k for r in rows for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)})
    assert not bad, f"not finite: {bad[:4]}"
    mismatch = max(r["learner/logprob_mismatch"] for r in train)
    limit = tolerance(name)
    assert mismatch < limit, f"engine and learner log-probs differ by {mismatch:.3g} per token (limit {limit:g})"
    summary = json.loads((run_dir / "summary.json").read_text())
    return (f"{ITERATIONS} iterations in {seconds:.0f} s (start-up included), logprob mismatch {mismatch:.1g} "
            f"(limit {limit:g}), eval {summary['start_accuracy']:.2f} -> {summary['final_accuracy']:.2f}")


def run_recipe(name: str, device: str, tmp: Path, timeout_s: float = 300) -> str:
    """Compose the recipe; run it for 2 iterations on $RLREASON_GPU_MODEL when that is set."""
    overrides = RECIPES[name]
    proc = subprocess.run([sys.executable, "-m", "rlreason.run", "--cfg", "job", *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        raise RuntimeError(f"--cfg job: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    model = os.environ.get("RLREASON_GPU_MODEL")
    if not model:
        return "composes; RLREASON_GPU_MODEL not set: not run"
    # after SMALL on the command line, so these win: the recipe's own micro-batch (a 152k vocabulary's logits)
    ROWS[name] = [*overrides, f"model.path={model}", "learner.micro_batch_size=2"]
    return run_loop(name, device, tmp, timeout_s)


def gpu_count(device: str) -> int:
    import torch

    return torch.cuda.device_count() if device == "cuda" else 0


def refuse_group_on_shared_gpu(device: str, tmp: Path) -> str:
    """weight_transfer=group with the engine process on the learner's own GPU: NCCL cannot hold two ranks on
    one device ("Duplicate GPU detected"), so the run must be refused before it starts (issue 31, 2c)."""
    if device != "cuda":
        return "cpu run: not checked (the refusal is for GPUs)"
    proc = subprocess.run([sys.executable, "-m", "rlreason.run", "engine.separate_process=true",
                           "engine.weight_transfer=group", "device=cuda", "trainer.iterations=1",
                           f"hydra.run.dir={tmp / 'refused'}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    want = "engine.weight_transfer=group with the engine process on its learner's GPU"
    assert proc.returncode == 2 and want in proc.stderr, f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    return "refused before start, one rlreason: line"


def dead_engine_over_nccl(device: str) -> str:
    """An engine on cuda:1 killed mid-broadcast: learner rank 0 gets a TransferError, aborts the group, and
    outlives NCCL's watchdog (issue 31, 2d; tests/engine/transfer_child.py)."""
    if gpu_count(device) < 2:
        return "not run: needs 2 GPUs"
    sys.path.insert(0, str(ROOT))
    from tests.engine.transfer_child import dead_engine_check

    assert dead_engine_check() == 0, "see the line above"
    return "TransferError within the deadline, rank 0 alive past the group's timeout"


def group_against_file(device: str, tmp: Path, timeout_s: float) -> str:
    """The separate engine on GPU 1 fed over an NCCL group, against the same run fed through files: equal
    metrics but time/ and sync/ (issue 31, 1b on NCCL)."""
    if gpu_count(device) < 2:
        return "not run: needs 2 GPUs"
    runs = {}
    for how in ("group", "file"):
        name = f"loop: separate engine on GPU 1, {how}"
        ROWS[name] = ["engine.separate_process=true", "engine.devices=[1]", f"engine.weight_transfer={how}"]
        run_loop(name, device, tmp, timeout_s)
        run_dir = run_dir_of(tmp, name)
        runs[how] = [{k: v for k, v in json.loads(x).items() if not k.startswith(("time/", "sync/"))}
                     for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert runs["group"] == runs["file"], "the group run's metrics differ from the file run's"
    return f"{len(runs['group'])} metric rows equal, group and file"


def loop_rows(check, which: str, device: str, tmp: Path, timeout_s: float) -> None:
    """Every row of this file as rows of scripts/gpu_check.py's table (`check.run(name, fn)`); `which`: all,
    none, first (the first loop row alone: the CPU test of the check) or lora (the LoRA rows alone)."""
    for name in {"all": list(ROWS), "none": [], "first": list(ROWS)[:1], "lora": LORA_ROWS}[which]:
        check.run(name, lambda name=name: run_loop(name, device, tmp, timeout_s))
    if which != "all":
        return
    for name in RECIPES:
        check.run(name, lambda name=name: run_recipe(name, device, tmp, timeout_s))
    check.run("group on the learner's GPU: refused", lambda: refuse_group_on_shared_gpu(device, tmp))
    check.run("dead engine over NCCL", lambda: dead_engine_over_nccl(device))
    check.run("group against file, engine on GPU 1", lambda: group_against_file(device, tmp, timeout_s))
    check.run("torchrun 2 ranks one step off", lambda: torchrun_async(device, tmp, timeout_s))


def torchrun_async(device: str, tmp: Path, timeout_s: float) -> str:
    """2 ranks one step off: each producer thread must run on its rank's GPU (issue 31, 2b: rank 1 used to
    fail with "Event device 1 does not match recording stream's device 0")."""
    if gpu_count(device) < 2:
        return "not run: needs 2 GPUs"
    run_dir = tmp / "torchrun_async"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "rlreason.run",
           *SMALL, "trainer.async_level=1", f"hydra.run.dir={run_dir}", f"cache_dir={tmp / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return f"{sum('learner/logprob_mismatch' in r for r in rows)} iterations on 2 ranks, one step off"
