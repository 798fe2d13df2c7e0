"""engine=hf: the same interface on plain `transformers` generate. No vLLM needed; the tests' reference.

Prompts are repeated `n` times, sorted by length (less padding), and generated in left-padded batches of
`hf_batch_size` sequences with the KV cache. `output_scores` are the logits after temperature and top-p,
so their log_softmax at the sampled token is the same quantity vLLM's processed log-probs are.
`max_model_len` is accepted for the common signature; the model's own position limit applies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from rlreason.engine.base import Completion, SamplingParams, check_version, per_prompt


class HFEngine:
    def __init__(self, cfg: Any, model_path: str, tokenizer: Any, *, dtype: str, seed: int, max_model_len: int,
                 device: str | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(self.device)
        self.model.eval()
        self.tokenizer = tokenizer
        self.batch_size = cfg.hf_batch_size
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = tuple(dict.fromkeys(eos))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.seed = seed
        self.calls = 0
        self.version = 0
        self.generated_tokens = 0
        self.requests = 0

    @torch.no_grad()
    def generate(
        self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams], version: int | None = None
    ) -> list[list[Completion]]:
        check_version(self, version)
        each = per_prompt(params, len(prompts))
        # Requests that differ only in seed and token budget share batches: each is generated to the
        # group's largest budget and cut to its own, which samples the same distribution (sampling is
        # token by token). HF seeds a batch, not a row, so a group draws from one stream seeded by its
        # first request's seed (a fresh stream when unseeded).
        groups: dict[SamplingParams, list[int]] = defaultdict(list)
        for i, p in enumerate(each):
            groups[replace(p, seed=None, max_tokens=0)].append(i)
        done: dict[int, list[Completion]] = {}
        for key, members in groups.items():
            first = each[members[0]]
            budget = max(each[i].max_tokens for i in members)
            flat = [(i, each[i].max_tokens) for i in members for _ in range(each[i].n)]
            outs = self._sample([prompts[i] for i, _ in flat], [m for _, m in flat],
                                replace(key, max_tokens=budget, seed=first.seed))
            for (i, _), c in zip(flat, outs):
                done.setdefault(i, []).append(c)
        result = [done.get(i, []) for i in range(len(prompts))]
        self.requests += sum(p.n for p in each)
        self.generated_tokens += sum(len(c.token_ids) for g in result for c in g)
        return result

    def continue_from(
        self, prefixes: list[list[int]], params: SamplingParams | Sequence[SamplingParams], version: int | None = None
    ) -> list[list[Completion]]:
        return self.generate(prefixes, params, version)

    def _sample(self, flat: list[list[int]], budgets: list[int], params: SamplingParams) -> list[Completion]:
        """One completion per sequence of `flat`, each cut at its own token budget."""
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))  # less padding
        done: list[Completion | None] = [None] * len(flat)
        seed = params.seed if params.seed is not None else self.seed + 1_000_003 * self.calls  # a fresh stream
        self.calls += 1
        # Our own RNG stream: sampling must not move the learner's global torch RNG.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                for i, c in zip(idx, self._batch([flat[i] for i in idx], [budgets[i] for i in idx], params)):
                    done[i] = c
        return done  # type: ignore[return-value]

    def _batch(self, prompts: list[list[int]], budgets: list[int], p: SamplingParams) -> list[Completion]:
        width = max(len(x) for x in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, x in enumerate(prompts):
            ids[row, width - len(x):] = torch.tensor(x)
            mask[row, width - len(x):] = 1
        stops = tuple(p.stop_token_ids) + (() if p.ignore_eos else self.eos_ids)
        sample = p.temperature > 0
        gen = GenerationConfig(
            max_new_tokens=max(budgets), do_sample=sample, temperature=p.temperature if sample else None,
            top_p=p.top_p if sample else None, top_k=0,  # 0: no top-k (HF's default is 50, vLLM's none)
            eos_token_id=list(stops),  # [] = ignore eos
            pad_token_id=self.pad_id, stop_strings=list(p.stop) or None,
            return_dict_in_generate=True, output_scores=True)
        out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                  generation_config=gen, tokenizer=self.tokenizer if p.stop else None)
        new = out.sequences[:, width:]
        logps = torch.stack(out.scores, 1).float().log_softmax(-1).gather(-1, new[..., None])[..., 0]
        return [self._completion(row[:b], lp[:b], stops, p.stop)
                for row, lp, b in zip(new.tolist(), logps.tolist(), budgets)]

    def _completion(self, row: list[int], logps: list[float], stops: tuple[int, ...],
                    stop_strings: tuple[str, ...]) -> Completion:
        # Cut after the first stop token / stop string; what follows is padding.
        end, reason = len(row), "length"
        for k, tok in enumerate(row):
            if tok in stops:
                end, reason = k + 1, "stop"
                break
        if stop_strings and any(s in self.tokenizer.decode(row[:end]) for s in stop_strings):
            end = next(k + 1 for k in range(end)
                       if any(s in self.tokenizer.decode(row[:k + 1]) for s in stop_strings))
            reason = "stop"
        ids = row[:end]
        return Completion(ids, self.tokenizer.decode(ids, skip_special_tokens=True), logps[:end], reason)

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int) -> None:
        state = dict(named_tensors)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        # A tied weight (lm_head = embed_tokens) may be sent under one name only.
        own = self.model.state_dict()
        loaded = {own[k].data_ptr() for k in state if k in own}
        missing = [k for k in missing if own[k].data_ptr() not in loaded]
        if missing or unexpected:
            raise KeyError(f"sync_weights: missing {missing}, unexpected {unexpected}")
        self.version = version

    def reset_prefix_cache(self) -> None:
        pass  # no cache outlives a generate call

    def sleep(self) -> None:
        pass

    def wake_up(self) -> None:
        pass

    def stats(self) -> dict[str, float]:
        return {"generated_tokens": float(self.generated_tokens), "requests": float(self.requests)}

    def close(self) -> None:
        self.model = None
