"""Computed GPU memory of a run, per GPU, from the model's architecture (its HF config.json).

    python -m rlreason.distributed.memory MODEL_DIR_OR_CONFIG_JSON --gpus 8 --micro-batch 4 --seq 1300

An estimate of the large terms, not a measurement (activations are approximate):
  - training state, sharded over the GPUs by FSDP2: fp32 weights 4 + fp32 gradients 4 + Adam moments 8
    bytes per parameter; the bf16 reference model 2 bytes per parameter (0 with distributed.offload_ref);
  - the update's peak: the float32 logits of one micro-batch, about 5 copies alive at once in
    learner.token_logprobs (logits, scaled, log-softmax, its exp, the entropy product); the layer-boundary
    hidden states kept by gradient checkpointing; one layer's recompute; two gathered FSDP layers (bf16);
  - generation: the vLLM engine's budget (engine.gpu_memory_utilization x the GPU) next to the learner's
    resident shards (weights + Adam + reference: gradients are freed after each update). With
    engine.sleep_mode the engine releases its memory during the update.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GIB = 2**30


def parameters(c: dict[str, Any]) -> tuple[int, int]:
    """(total parameters, parameters of one decoder layer) of a Llama-style decoder."""
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    head_dim = c.get("head_dim") or h // c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or c["num_attention_heads"]
    layer = 2 * h * h + 2 * h * kv * head_dim + 3 * h * inter + 2 * h  # q, o; k, v; gate, up, down; 2 norms
    embed = vocab * h * (1 if c.get("tie_word_embeddings") else 2)
    return layers * layer + embed + h, layer


def estimate(c: dict[str, Any], *, gpus: int, micro_batch: int, seq: int, kl: bool = True,
             offload_ref: bool = False, engine_fraction: float = 0.4, gpu_gib: float = 80.0) -> dict[str, float]:
    """GiB per GPU of each term and of the two phases (see the module doc)."""
    n, layer = parameters(c)
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    tokens = micro_batch * seq
    out = {
        "parameters_billion": n / 1e9,
        "weights_fp32": 4 * n / gpus / GIB,
        "grads_fp32": 4 * n / gpus / GIB,
        "adam": 8 * n / gpus / GIB,
        "reference_bf16": 0.0 if not kl or offload_ref else 2 * n / gpus / GIB,
        "logits": 5 * 4 * tokens * vocab / GIB,
        "activations": (2 * tokens * h * layers + 2 * 2 * tokens * (4 * h + 3 * inter)) / GIB,
        "gathered_layers": 2 * 2 * layer / GIB,
        "engine": engine_fraction * gpu_gib,
    }
    out["update_peak"] = sum(out[k] for k in ("weights_fp32", "grads_fp32", "adam", "reference_bf16", "logits",
                                              "activations", "gathered_layers"))
    out["generation_peak"] = out["weights_fp32"] + out["adam"] + out["reference_bf16"] + out["engine"]
    out["fits"] = float(max(out["update_peak"], out["generation_peak"]) <= gpu_gib)
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
    a = ap.parse_args()
    path = Path(a.config)
    c = json.loads((path / "config.json" if path.is_dir() else path).read_text())
    est = estimate(c, gpus=a.gpus, micro_batch=a.micro_batch, seq=a.seq, kl=not a.no_kl, offload_ref=a.offload_ref,
                   engine_fraction=a.engine_fraction, gpu_gib=a.gpu_gib)
    print(json.dumps({k: round(v, 2) for k, v in est.items()}, indent=1))


if __name__ == "__main__":
    main()
