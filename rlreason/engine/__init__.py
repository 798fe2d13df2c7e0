"""Sampling engines behind one interface (`base.Engine`): vLLM for real runs, transformers as reference."""

from __future__ import annotations

from typing import Any

import torch

from rlreason.engine.base import Completion, Engine, SamplingParams, StaleWeightsError

__all__ = ["Completion", "Engine", "SamplingParams", "StaleWeightsError", "make_engine"]


def make_engine(engine_cfg: Any, model_path: str, tokenizer: Any, *, dtype: str, seed: int,
                max_model_len: int, lora_rank: int = 0) -> Engine:
    """Start the engine named by `engine_cfg.name` on the weights at `model_path`. `lora_rank` > 0 (vLLM
    only; learner.lora.sync=adapter): the engine serves LoRA adapters up to that rank, and a sync hands it
    the policy's adapter (rlreason/engine/vllm_engine.py).

    `dtype` is a torch dtype name; "auto" means bfloat16 on a GPU, float32 on CPU.
    """
    if dtype == "auto":
        dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    kwargs = dict(dtype=dtype, seed=seed, max_model_len=max_model_len)
    if engine_cfg.name == "hf":
        if lora_rank:
            raise ValueError("engine=hf serves no LoRA adapters (learner.lora.sync=adapter needs engine=vllm)")
        from rlreason.engine.hf import HFEngine

        return HFEngine(engine_cfg, model_path, tokenizer, **kwargs)
    if engine_cfg.name == "vllm":
        from rlreason.engine import _vllm_compat

        _vllm_compat.import_vllm(engine_cfg.separate_process)  # the clear error, before anything else starts
        from rlreason.engine.vllm_engine import VLLMEngine

        return VLLMEngine(engine_cfg, model_path, tokenizer, lora_rank=lora_rank, **kwargs)
    raise ValueError(f"engine.name={engine_cfg.name!r}: expected vllm or hf")
