"""learner.lora: train low-rank adapters (peft) on a frozen base instead of every weight.

- The policy is the base model wrapped by `peft.get_peft_model`; only the adapters are trainable, so the
  optimizer (and its checkpointed state) covers them alone.
- The KL's reference is the same model with the adapters disabled (`disable_adapter()`): the frozen base
  *is* the starting policy, so no second copy of the weights is loaded.
- The engine gets merged weights, W + (alpha / r) B A, under the base model's own parameter names, computed
  per layer as the sync consumes them (`MergedWeights`): the running vLLM engine loads them in place as it
  does a full fine-tune's, and the policy is never merged in place (training goes on with the adapters).
- A checkpoint's `policy/` holds the adapter (peft's adapter_config.json + adapter_model.safetensors);
  resume loads it onto the base model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

ADAPTER_CONFIG = "adapter_config.json"


def enabled(cfg: Any) -> bool:
    """Whether learner config `cfg` trains adapters (learner.lora.r > 0)."""
    lora = getattr(cfg, "lora", None)
    return bool(lora is not None and lora.r)


def problems(lora: Any) -> list[str]:
    """learner.lora.* values that cannot work, before any compute."""
    out = []
    if lora.r < 0:
        out.append(f"learner.lora.r={lora.r} must be >= 0 (0: off, full fine-tuning; 8-64: typical ranks)")
    if lora.r and not lora.alpha > 0:
        out.append(f"learner.lora.alpha={lora.alpha} must be > 0 (the adapter's scale is alpha / r)")
    if not 0 <= lora.dropout < 1:
        out.append(f"learner.lora.dropout={lora.dropout} must be in [0, 1)")
    if lora.r and not list(lora.target_modules):
        out.append("learner.lora.target_modules is empty: name the linear layers to adapt, e.g. "
                   "[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]")
    return out


def is_adapter_dir(path: str | Path | None) -> bool:
    return path is not None and (Path(path) / ADAPTER_CONFIG).is_file()


def wrap(base: nn.Module, lora: Any, init_path: str | None = None, seed: int = 0) -> nn.Module:
    """The base model with trainable adapters: fresh (peft's init: A random, B = 0, so the policy starts as
    the base), or the ones saved in `init_path` (a checkpoint's policy dir) when resuming. A fresh A is
    drawn from its own generator seeded by `seed`: the same run gets the same adapters whatever drew from
    the global RNG before (a run resumed in another process trains on as the uninterrupted one)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    check_targets(base, lora)
    names = set(list(lora.target_modules))
    if init_path is not None:
        if not is_adapter_dir(init_path):
            from rlreason.config import ConfigError

            raise ConfigError(f"learner.lora.r={lora.r} but {init_path} holds no adapter ({ADAPTER_CONFIG}): it is a "
                              "full fine-tuning checkpoint; resume it with learner.lora.r=0, or start a new run "
                              "with run_name=...")
        return PeftModel.from_pretrained(base, init_path, is_trainable=True)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=sorted(names), bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(base, config)


def check_targets(model: nn.Module | str, lora: Any) -> None:
    """Every learner.lora.target_modules name is a linear layer of `model` (a module, or a model dir whose
    architecture is built on the meta device: no weights, before any compute); a ConfigError else."""
    if isinstance(model, str):
        from transformers import AutoConfig, AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model))
    present = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    if missing := sorted(set(list(lora.target_modules)) - present):
        from rlreason.config import ConfigError

        raise ConfigError(f"learner.lora.target_modules: {missing} are not linear layers of this model (it has "
                          f"{sorted(present)}); set learner.lora.target_modules to some of those")


class AdaptersOff:
    """The KL's reference: the policy's forward with its adapters disabled (the frozen base model).
    Called as the learner calls a model; holds no weights of its own."""

    def __init__(self, policy: nn.Module):
        self.policy = policy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.policy.disable_adapter():
            return self.policy(*args, **kwargs)


class MergedWeights:
    """The policy's weights as the base model's checkpoint has them: each adapted linear layer's weight
    merged with its adapter (base + its `get_delta_weight`), every other tensor as is, under the base
    model's HF names (no `base_layer.`, no lora_A/lora_B). One merged tensor at a time; the policy itself
    is not changed. `dtype`: the engine's. `specs()` as FullWeights' (rlreason/distributed/fsdp.py)."""

    def __init__(self, policy: nn.Module, dtype: torch.dtype | None = None):
        self.policy, self.dtype = policy, dtype

    def _items(self) -> Iterator[tuple[str, torch.Tensor, nn.Module | None]]:
        from peft.tuners.lora import LoraLayer

        base = self.policy.get_base_model()
        for name, tensor in base.state_dict().items():
            if ".lora_" in name:
                continue
            if ".base_layer." in name:
                owner, leaf = name.split(".base_layer.")
                layer = base.get_submodule(owner)
                yield f"{owner}.{leaf}", tensor, layer if isinstance(layer, LoraLayer) and leaf == "weight" else None
            else:
                yield name, tensor, None

    def specs(self) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        return [(name, tuple(t.shape), self.dtype or t.dtype) for name, t, _ in self._items()]

    @torch.no_grad()
    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor, layer in self._items():
            if layer is not None:
                for adapter in layer.active_adapters:
                    tensor = tensor + layer.get_delta_weight(adapter).to(tensor.dtype)
            yield name, (tensor.to(self.dtype) if self.dtype is not None else tensor).detach()


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def world_problems(learner_cfg: Any, world: int) -> list[str]:
    """LoRA under torchrun (FSDP2 over a peft model) is not built yet: refused before compute."""
    if enabled(learner_cfg) and world > 1:
        return [f"learner.lora.r={learner_cfg.lora.r} runs in one process only for now (this is a torchrun world "
                f"of {world}): run python -m rlreason.run ... in one process, or set learner.lora.r=0 for FSDP2 "
                "full fine-tuning"]
    return []
