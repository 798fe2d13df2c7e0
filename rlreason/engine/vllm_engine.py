"""engine=vllm: one `vllm.LLM` in this process for the whole run, weights pushed in place.

Each call is one batch: every prompt becomes one request with `n` samples, so the n samples share the
prompt's KV blocks and VinePPO's K continuations of a prefix hit the prefix cache. Version-specific
calls go through `_vllm_compat`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import torch

from rlreason.engine import _vllm_compat as compat
from rlreason.engine.base import Completion, SamplingParams, check_version, finish_reason, per_prompt

log = logging.getLogger(__name__)


class VLLMEngine:
    def __init__(self, cfg: Any, model_path: str, tokenizer: Any, *, dtype: str, seed: int, max_model_len: int,
                 lora_rank: int = 0):
        tok_path = getattr(tokenizer, "name_or_path", "") or ""
        self.llm = compat.build_llm(cfg, model_path, tok_path if os.path.isdir(tok_path) else model_path,
                                    dtype=dtype, seed=seed, max_model_len=max_model_len, lora_rank=lora_rank)
        # learner.lora.sync=adapter: the base stays as loaded; each sync writes the policy's adapter into a
        # dir of its own and every generate (rollouts, MC continuations, eval) runs under its LoRARequest
        self.lora_rank = lora_rank
        self._lora = None  # the current version's LoRARequest
        self._adapters: str | None = None  # where the adapter dirs are written
        self.tokenizer = tokenizer
        self.version = 0
        self.sleep_mode = cfg.sleep_mode and not compat.on_cpu()  # the CPU worker has no sleep mode
        self._asleep: set[str] = set()  # vLLM memory tags discarded by sleep() and not yet back
        self.generated_tokens = 0
        self.requests = 0
        self._scratch: str | None = None  # weights handed to an engine in another process go through here
        self._group = None  # engine.weight_transfer=group: the transfer group's learner end (group_sync.py)
        if getattr(cfg, "weight_transfer", "file") == "group":
            from rlreason.engine.group_sync import GroupSync

            self._group = GroupSync(self.llm, timeout_s=cfg.transfer_timeout_s, tensor_parallel=cfg.tensor_parallel_size)

    def generate(
        self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams], version: int | None = None
    ) -> list[list[Completion]]:
        check_version(self, version)
        if not prompts:
            return []
        compat.check_alive(self.llm)
        if self._asleep:
            raise RuntimeError(f"the vLLM engine is asleep ({sorted(self._asleep)} discarded by engine.sleep_mode): "
                               "its weights must be synced before it generates again")
        each = per_prompt(params, len(prompts))
        # vLLM rejects n > 1 for greedy: ask for one and repeat it (all n would be equal).
        repeat = [p.n if p.temperature == 0 else 1 for p in each]
        sent = [replace(p, n=1) if r > 1 else p for p, r in zip(each, repeat)]
        with self._alive():
            outs = self.llm.generate([compat.tokens_prompt(p) for p in prompts],
                                     [compat.sampling_params(p, p.seed) for p in sent], use_tqdm=False,
                                     lora_request=self._lora)
        result = []
        for out, r in zip(outs, repeat):
            group = [self._completion(o) for o in sorted(out.outputs, key=lambda o: o.index)]
            result.append([replace(group[0]) for _ in range(r)] if r > 1 else group)
        self.requests += sum(p.n for p in each)
        self.generated_tokens += sum(len(c.token_ids) for group in result for c in group)
        return result

    def continue_from(
        self, prefixes: list[list[int]], params: SamplingParams | Sequence[SamplingParams], version: int | None = None
    ) -> list[list[Completion]]:
        # A prefix is just a longer prompt; the prefix cache makes its K continuations cheap.
        return self.generate(prefixes, params, version)

    def _completion(self, o: Any) -> Completion:
        ids = list(o.token_ids)
        return Completion(ids, self.tokenizer.decode(ids, skip_special_tokens=True),
                          compat.sampled_logprobs(o), finish_reason(o.finish_reason))

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int) -> None:
        compat.check_alive(self.llm)
        if self.lora_rank and hasattr(named_tensors, "save_adapter"):
            self._sync_adapter(named_tensors, version)
            return
        if not compat.in_process(self.llm) and self._scratch is None and self._group is None:
            # Memory-backed where there is one: the engine process reads the weights straight back.
            shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self._scratch = tempfile.mkdtemp(prefix="rlreason-weights-", dir=shm)
        self.wake_up()  # the weights' memory, if asleep: the sync writes every weight into it
        if self._group is not None:  # over the transfer group; its errors already say whether the engine died
            self._group.sync(named_tensors, version)
        else:
            with self._alive():
                compat.push_weights(self.llm, named_tensors, self._scratch)
        if "kv_cache" in self._asleep:  # back only now: never resident beside the sync's gathered tensor
            self.llm.wake_up(tags=["kv_cache"])
            self._asleep.discard("kv_cache")
        # Cached KV blocks hold the old weights' keys and values: reusing them skews log-probs (0.6-1.9).
        self.reset_prefix_cache()
        self.version = version

    def _sync_adapter(self, adapter: Any, version: int) -> None:
        """learner.lora.sync=adapter: the adapter's files (peft's) in a new dir, served from the next generate
        on as a new LoRARequest; the previous version's dir goes (vLLM has loaded it, max_loras=1 evicts it)."""
        if self._adapters is None:
            shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self._adapters = tempfile.mkdtemp(prefix="rlreason-adapters-", dir=shm)
        out = os.path.join(self._adapters, f"v{version}")
        shutil.rmtree(out, ignore_errors=True)
        adapter.save_adapter(out)
        previous, self._lora = self._lora, compat.lora_request(version, out)
        if previous is None:
            log.info(f"vLLM serves the policy as a LoRA adapter (max_lora_rank {self.lora_rank}), "
                     f"{os.path.getsize(os.path.join(out, 'adapter_model.safetensors'))} bytes a sync")
        if previous is not None and previous.lora_path != out:
            shutil.rmtree(previous.lora_path, ignore_errors=True)
        self.reset_prefix_cache()
        self.version = version

    @contextlib.contextmanager
    def _alive(self):
        """A dead engine process (engine.separate_process: killed, out of memory) is one clear error."""
        try:
            yield
        except compat.dead_engine_errors() as e:
            raise RuntimeError(compat.DEAD_ENGINE) from e

    def reset_prefix_cache(self) -> None:
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset the prefix cache (requests still running)")

    def sleep(self) -> None:
        """Level 2: weights and KV cache are discarded, not backed up. The sync after the update overwrites
        every weight, so level 1's copy of them to pinned host RAM and back (2 bytes per parameter each way,
        13.8 GB per 7B rank per iteration) bought nothing. vLLM keeps the model's buffers (rotary caches)."""
        if self.sleep_mode and not self._asleep:
            self.llm.sleep(level=2)
            self._asleep = {"weights", "kv_cache"}

    def wake_up(self) -> None:
        """Reallocate the weights' memory only (its contents are stale until `sync_weights`, which also
        brings the KV cache back): the engine generates again after the sync, not before."""
        if "weights" in self._asleep:
            self.llm.wake_up(tags=["weights"])
            self._asleep.discard("weights")

    def stats(self) -> dict[str, float]:
        out = {"generated_tokens": float(self.generated_tokens), "requests": float(self.requests)}
        counters = compat.prefix_cache_counters(self.llm)
        out.update(counters)
        if counters.get("prefix_cache_queries"):
            out["prefix_cache_hit_rate"] = counters["prefix_cache_hits"] / counters["prefix_cache_queries"]
        return out

    def close(self) -> None:
        if getattr(self, "_group", None) is not None:
            self._group.close()
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            compat.shutdown(llm)
            del llm
            gc.collect()  # the model and KV cache go with the last reference
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        for scratch in (self._scratch, self._adapters):
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
