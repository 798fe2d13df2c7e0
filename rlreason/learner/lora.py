"""learner.lora: train low-rank adapters (peft) on a frozen base instead of every weight.

- The policy is the base model wrapped by `peft.get_peft_model`; only the adapters are trainable, so the
  optimizer (and its checkpointed state) covers them alone.
- The KL's reference is the same model with the adapters disabled (`disable_adapter()`): the frozen base
  *is* the starting policy, so no second copy of the weights is loaded.
- The engine gets merged weights, W + (alpha / r) B A, under the base model's own parameter names, computed
  per layer as the sync consumes them (`MergedWeights`): the running vLLM engine loads them in place as it
  does a full fine-tune's, and the policy is never merged in place (training goes on with the adapters).
- learner.lora.sync=adapter: the engine (vLLM with enable_lora) gets the adapter itself instead
  (`AdapterWeights.save_adapter`), a new LoRARequest per policy version (rlreason/engine/vllm_engine.py).
- A checkpoint's `policy/` holds the adapter (peft's adapter_config.json + adapter_model.safetensors);
  resume loads it onto the base model.
- Under torchrun the peft model is sharded with FSDP2 as a full model is (the frozen base too); the merge
  and the adapter files gather the shards they need (`_full_delta`, `adapter_files`), and the DCP
  checkpoint leaves the frozen base out (rlreason/distributed/checkpoint.py LearnerState).
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
    if lora.sync not in SYNCS:
        out.append(f"learner.lora.sync={lora.sync} must be one of {'|'.join(SYNCS)}")
    return out


SYNCS = ("merged", "adapter")
VLLM_MAX_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM 0.32 accepts


def sync_problems(cfg: Any, world: int) -> list[str]:
    """learner.lora.sync=adapter needs an engine that serves LoRA adapters: vLLM, in one process, one batch
    at a time (the whole-config part; the model's architecture is checked by `engine_lora_rank`'s caller)."""
    lora = cfg.learner.lora
    if lora.sync != "adapter":
        return []
    name = f"learner.lora.sync=adapter (learner.lora.r={lora.r})"
    if not lora.r:
        return ["learner.lora.sync=adapter needs adapters: set learner.lora.r > 0 (e.g. 16), or "
                "learner.lora.sync=merged"]
    out = []
    if cfg.engine.name != "vllm":
        out.append(f"{name} needs engine=vllm (vLLM's LoRA adapters; engine={cfg.engine.name} has none): set "
                   "engine=vllm or learner.lora.sync=merged")
    if lora.r > VLLM_MAX_RANKS[-1]:
        out.append(f"{name}: vLLM serves adapters up to rank {VLLM_MAX_RANKS[-1]}; lower learner.lora.r or set "
                   "learner.lora.sync=merged")
    if world > 1:
        out.append(f"{name} runs in one process only for now (this is a torchrun world of {world}): set "
                   "learner.lora.sync=merged under torchrun")
    if cfg.trainer.async_level:
        out.append(f"{name} does not run one step off yet (trainer.async_level={cfg.trainer.async_level}: its "
                   "checkpoints keep the in-flight batch's weights merged): set trainer.async_level=0 or "
                   "learner.lora.sync=merged")
    return out


def engine_lora_rank(lora: Any) -> int:
    """The engine's max_lora_rank for learner.lora (0: the engine serves no adapters, sync=merged)."""
    if lora.sync != "adapter" or not lora.r:
        return 0
    return next(r for r in VLLM_MAX_RANKS if r >= lora.r)


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
            if _sharded(tensor):  # FSDP2 (torchrun): merge the full tensors (every rank gathers in step)
                tensor = tensor.full_tensor()
                if layer is not None:
                    for adapter in layer.active_adapters:
                        tensor = tensor + _full_delta(layer, adapter).to(tensor.dtype)
            elif layer is not None:
                for adapter in layer.active_adapters:
                    tensor = tensor + layer.get_delta_weight(adapter).to(tensor.dtype)
            yield name, (tensor.to(self.dtype) if self.dtype is not None else tensor).detach()


def _sharded(tensor: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def _full_delta(layer: nn.Module, adapter: str) -> torch.Tensor:
    """peft's get_delta_weight, (alpha / r) B A, from the gathered A and B of a sharded layer (peft's own
    would multiply the shards)."""
    a, b = (w[adapter].weight.full_tensor() for w in (layer.lora_A, layer.lora_B))
    delta = (b @ a) * layer.scaling[adapter]
    return delta.T if layer.fan_in_fan_out else delta


def adapter_files(policy: nn.Module, out: Path, main: bool) -> None:
    """Write the adapter as peft's save_pretrained does (adapter_config.json + adapter_model.safetensors),
    from a policy sharded with FSDP2: every rank gathers the adapter tensors (collectives), `main` writes."""
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    full = {n: (p.full_tensor() if _sharded(p) else p).detach().contiguous()
            for n, p in policy.named_parameters() if p.requires_grad}
    if main:
        out.mkdir(parents=True, exist_ok=True)
        state = get_peft_model_state_dict(policy, state_dict=full)
        save_file({k: v.contiguous() for k, v in state.items()}, str(out / "adapter_model.safetensors"),
                  metadata={"format": "pt"})
        policy.peft_config["default"].save_pretrained(str(out))


class AdapterWeights(MergedWeights):
    """learner.lora.sync=adapter: what the engine gets is the adapter itself (`save_adapter(dir)` writes
    peft's files, which vLLM loads as a new LoRARequest). Iterated, it is still the merged weights, for a
    consumer that wants full tensors (an engine without adapters)."""

    def save_adapter(self, out: Path) -> None:
        adapter_files(self.policy, Path(out), main=True)


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]

