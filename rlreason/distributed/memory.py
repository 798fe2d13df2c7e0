"""Computed GPU memory of a run, per GPU, from the model's architecture (its HF config.json).

    python -m rlreason.distributed.memory MODEL_DIR_OR_CONFIG_JSON --gpus 8 --micro-batch 4 --seq 1300

An estimate of the large terms, not a measurement (activations are approximate):
  - training state, sharded over the GPUs by FSDP2: fp32 weights 4 + fp32 gradients 4 + Adam moments 8
    bytes per parameter; the bf16 reference model 2 bytes per parameter (0 with distributed.offload_ref);
  - the update's peak: the float32 logits of one micro-batch, about 5 copies alive at once in
    learner.token_logprobs (logits, scaled, log-softmax, its exp, the entropy product; the last two are
    freed at once unless algo.entropy_coef > 0 keeps them for the backward);
    the layer-boundary hidden states kept by gradient checkpointing; one layer's recompute; two gathered
    FSDP layers (bf16); the FSDP2 root unit (embeddings, final norm, head: gathered in bf16 for the
    forward and kept for the backward, plus its unsharded fp32 gradient before the reduce-scatter) -- in
    one process, without FSDP, autocast's bf16 copies of all weights instead;
  - generation: the vLLM engine's budget (engine.gpu_memory_utilization x the GPU) next to the learner's
    resident shards (weights + Adam + reference: gradients are freed after each update);
  - the engine during the update: with engine.sleep_mode (the paper presets) it releases its memory; without
    it (`sleep_mode=False`, the engine group's default) its whole budget stays resident beside the update;
  - the KV cache inside the engine's budget (what is left after its bf16 weights and a forward pass's
    activations), in tokens, and how many `seq`-token sequences run at once against engine.max_num_seqs:
    fewer means vLLM preempts and generation is bound by the cache, not the batch;
  - an allowance per process, not computed: CUDA context and cuBLAS workspace, NCCL's buffers (more than
    one GPU) and, without engine.enforce_eager, vLLM's CUDA-graph pool;
  - host RAM at start: each rank loads each model in full on the CPU and shards it before loading the
    next, so it holds the fp32 policy (the largest) at most, and a node that times its ranks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GIB = 2**30
# Allowances in GiB (typical figures from vLLM's and NCCL's start-up logs, not measured here).
CUDA_CONTEXT_GIB, NCCL_GIB, CUDA_GRAPHS_GIB = 0.75, 0.5, 1.0
ENGINE_BATCHED_TOKENS = 8192  # vLLM's default max_num_batched_tokens: the forward its profiling runs


def parameters(c: dict[str, Any]) -> tuple[int, int]:
    """(total parameters, parameters of one decoder layer) of a Llama-style decoder."""
    h, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    head_dim = c.get("head_dim") or h // c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or c["num_attention_heads"]
    layer = 2 * h * h + 2 * h * kv * head_dim + 3 * h * inter + 2 * h  # q, o; k, v; gate, up, down; 2 norms
    return layers * layer + root_parameters(c), layer


def root_parameters(c: dict[str, Any]) -> int:
    """Parameters outside the decoder layers (embeddings, final norm, LM head): FSDP2's root unit."""
    h = c["hidden_size"]
    return c["vocab_size"] * h * (1 if c.get("tie_word_embeddings") else 2) + h


def lora_parameters(c: dict[str, Any], rank: int) -> int:
    """Adapter parameters of learner.lora.r = `rank` on all seven projections (the default target_modules):
    r x (fan-in + fan-out) per adapted linear layer."""
    h, inter = c["hidden_size"], c["intermediate_size"]
    head_dim = c.get("head_dim") or h // c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or c["num_attention_heads"]
    q_out = c["num_attention_heads"] * head_dim
    per_layer = (h + q_out) * 2 + (h + kv * head_dim) * 2 + (h + inter) * 3  # q, o; k, v; gate, up, down
    return rank * per_layer * c["num_hidden_layers"]


def kv_bytes_per_token(c: dict[str, Any], *, dtype_bytes: int = 2, tensor_parallel: int = 1) -> float:
    """K and V of one token over all layers, per GPU of a tensor-parallel engine."""
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or c["num_attention_heads"]
    return 2 * c["num_hidden_layers"] * kv * head_dim * dtype_bytes / tensor_parallel


def estimate(c: dict[str, Any], *, gpus: int, micro_batch: int, seq: int, kl: bool = True,
             offload_ref: bool = False, engine_fraction: float = 0.4, gpu_gib: float = 80.0,
             max_num_seqs: int = 512, tensor_parallel: int = 1, enforce_eager: bool = False,
             critic: bool = False, fsdp: bool | None = None, sleep_mode: bool = False,
             lora_rank: int = 0) -> dict[str, float]:
    """GiB per GPU of each term and of the two phases (see the module doc). `critic`: algo=ppo's value
    model (the backbone and a scalar head: the policy less its LM head). `fsdp`: the learner is sharded
    (default: more than one GPU). `sleep_mode`: engine.sleep_mode, the engine's memory freed for the update.
    `lora_rank`: learner.lora.r; the frozen base keeps its fp32 weights, gradients and Adam cover the adapters
    only (the frozen root unit has no gradient), and the reference is the base with the adapters disabled
    (no copy of its own)."""
    n, layer = parameters(c)
    fsdp = gpus > 1 if fsdp is None else fsdp
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    tokens = micro_batch * seq
    root = root_parameters(c)
    trained = lora_parameters(c, lora_rank) if lora_rank else n
    out = {
        "parameters_billion": n / 1e9,
        "trained_parameters_billion": trained / 1e9,
        "weights_fp32": 4 * (n + (trained if lora_rank else 0)) / gpus / GIB,
        "grads_fp32": 4 * trained / gpus / GIB,
        "adam": 8 * trained / gpus / GIB,
        "reference_bf16": 0.0 if not kl or offload_ref or lora_rank else 2 * n / gpus / GIB,
        "logits": 5 * 4 * tokens * vocab / GIB,
        "activations": (2 * tokens * h * layers + 2 * 2 * tokens * (4 * h + 3 * inter)) / GIB,
        "critic_state": 16 * (n - c["vocab_size"] * h) / gpus / GIB if critic else 0.0,
        "gathered_layers": 2 * 2 * layer / GIB if fsdp else 0.0,
        # bf16 gathered for the forward; + its fp32 gradient, unless frozen (LoRA: embeddings and head train not)
        "root_unit": (2 + (0 if lora_rank else 4)) * root / GIB if fsdp else 0.0,
        "autocast_copies": 2 * n / GIB if not fsdp else 0.0,
        "runtime": CUDA_CONTEXT_GIB + (NCCL_GIB if gpus > 1 else 0.0) + (0.0 if enforce_eager else CUDA_GRAPHS_GIB),
        "engine": engine_fraction * gpu_gib,
    }
    out["engine_in_update"] = 0.0 if sleep_mode else out["engine"]  # asleep, or resident through the update
    out["update_peak"] = sum(out[k] for k in ("weights_fp32", "grads_fp32", "adam", "reference_bf16", "logits",
                                              "activations", "gathered_layers", "root_unit", "autocast_copies",
                                              "runtime", "critic_state", "engine_in_update"))
    out["generation_peak"] = (out["weights_fp32"] + out["adam"] + out["reference_bf16"] + out["engine"]
                              + out["runtime"] + out["critic_state"] * 12 / 16)  # less its freed gradients
    out["fits"] = float(max(out["update_peak"], out["generation_peak"]) <= gpu_gib)

    # The engine's budget: its weights, one profiled forward (a layer's intermediates for the batched tokens,
    # the sampler's fp32 logits for every running sequence), the rest KV cache.
    out["engine_weights"] = 2 * n / tensor_parallel / GIB
    out["engine_activations"] = (ENGINE_BATCHED_TOKENS * (4 * h + 2 * inter) * 2 / tensor_parallel
                                 + max_num_seqs * vocab * 4) / GIB
    per_token = kv_bytes_per_token(c, tensor_parallel=tensor_parallel)
    kv_gib = max(0.0, out["engine"] - out["engine_weights"] - out["engine_activations"])
    out["kv_cache_tokens"] = kv_gib * GIB / per_token
    out["kv_sequences"] = out["kv_cache_tokens"] / seq  # `seq`-token sequences generating at once
    out["max_num_seqs"] = float(max_num_seqs)
    out["preemption_bound"] = float(out["kv_sequences"] < max_num_seqs)
    need = out["engine_weights"] + out["engine_activations"] + max_num_seqs * seq * per_token / GIB
    out["engine_fraction_for_max_num_seqs"] = need / gpu_gib  # > 1: not on this GPU
    # Host RAM while loading: every rank holds one full model on the CPU at a time (the fp32 policy or critic
    # is the largest) until fully_shard moves its shards to the GPU.
    out["host_load_per_rank"] = 4 * n / GIB
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="a model dir or its config.json")
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1300, help="prompt + response tokens of the longest episode")
    ap.add_argument("--no-kl", action="store_true")
    ap.add_argument("--offload-ref", action="store_true")
    ap.add_argument("--engine-fraction", type=float, default=0.4)
    ap.add_argument("--gpu-gib", type=float, default=80.0)
    ap.add_argument("--max-num-seqs", type=int, default=512, help="engine.max_num_seqs")
    ap.add_argument("--tensor-parallel", type=int, default=1, help="engine.tensor_parallel_size")
    ap.add_argument("--enforce-eager", action="store_true", help="engine.enforce_eager (no CUDA graphs)")
    ap.add_argument("--critic", action="store_true", help="algo=ppo: a critic of the same size")
    ap.add_argument("--lora-rank", type=int, default=0, help="learner.lora.r (0: full fine-tuning)")
    ap.add_argument("--sleep-mode", action="store_true",
                    help="engine.sleep_mode=true (the paper presets): the engine frees its memory for the update; "
                         "without it (the default) the engine's budget stays resident through the update")
    a = ap.parse_args()
    path = Path(a.config)
    c = json.loads((path / "config.json" if path.is_dir() else path).read_text())
    est = estimate(c, gpus=a.gpus, micro_batch=a.micro_batch, seq=a.seq, kl=not a.no_kl, offload_ref=a.offload_ref,
                   engine_fraction=a.engine_fraction, gpu_gib=a.gpu_gib, max_num_seqs=a.max_num_seqs,
                   tensor_parallel=a.tensor_parallel, enforce_eager=a.enforce_eager, critic=a.critic,
                   sleep_mode=a.sleep_mode, lora_rank=a.lora_rank)
    print(json.dumps({k: round(v, 2) for k, v in est.items()}, indent=1))


if __name__ == "__main__":
    main()
