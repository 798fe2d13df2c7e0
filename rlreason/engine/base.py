"""The one interface every part of the loop uses to sample from the policy.

Prompts and prefixes go in as token ids (never re-tokenised, so a VinePPO continuation starts from
exactly the tokens the trajectory produced). Log-probs come back at the sampling temperature, the
ones PPO ratios need:

    logprob[t] = log_softmax(logits_t / T)[token_t]        (T > 0, top_p = 1)
    logprob[t] = log_softmax(logits_t)[token_t]            (T = 0, greedy: the T = 1 log-prob)

With top_p < 1 both engines report the log-prob under the truncated, renormalised distribution they
sampled from (tokens outside the nucleus at -inf, the rest renormalised); that is not the learner's
plain log_softmax(logits / T), so the first PPO ratio is not exactly 1 there.

Token ids of a completion include the token that ended it (eos or a stop token), with its log-prob;
`text` is the decoded `token_ids` (special tokens skipped), stop strings included.

`params` is one SamplingParams for every prompt, or a list with one per prompt (each request its own
seed and token budget: VinePPO gives every state its own remaining budget). Seeds follow vLLM's rule:
sample j of a request seeded s is drawn with seed s + j. One SamplingParams for all prompts seeds prompt
i with `seed + i * n`, so the samples of one call never share a seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import torch


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None  # None: the engine's own stream (seeded once at start)
    ignore_eos: bool = False  # benchmarks: always generate max_tokens


@dataclass
class Completion:
    token_ids: list[int]
    text: str
    logprobs: list[float]  # log p(token) of each sampled token under the temperature-scaled policy
    finish_reason: str  # "stop" (eos / stop token / stop string) or "length"


class StaleWeightsError(RuntimeError):
    """Raised when asked to generate for a policy version the engine has not been synced to."""


class Engine(Protocol):
    version: int  # policy version of the weights the engine holds

    def generate(
        self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams], version: int | None = None
    ) -> list[list[Completion]]:
        """`n` completions for each prompt, in prompt order. All prompts go in one batch.

        `version`, when given, must equal the engine's synced version, else StaleWeightsError.
        """
        ...

    def continue_from(
        self, prefixes: list[list[int]], params: SamplingParams | Sequence[SamplingParams], version: int | None = None
    ) -> list[list[Completion]]:
        """`n` continuations of each prefix (prompt + partial response, token ids)."""
        ...

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int) -> None:
        """Load new policy weights in place (no restart), reset the prefix cache, set `version`."""
        ...

    def reset_prefix_cache(self) -> None: ...

    def sleep(self) -> None:
        """Release accelerator memory while the learner trains (no-op where unsupported)."""
        ...

    def wake_up(self) -> None:
        """Bring back what `sleep` released. An engine whose sleep discarded its weights (vLLM) generates
        again only after the next `sync_weights`."""
        ...

    def stats(self) -> dict[str, float]:
        """Counters since start: generated tokens, prefix-cache hit rate where known."""
        ...

    def close(self) -> None: ...


def per_prompt(params: SamplingParams | Sequence[SamplingParams], n_prompts: int) -> list[SamplingParams]:
    """One SamplingParams per prompt. A single one is spread with seeds `seed + i * n` (see the module doc)."""
    if isinstance(params, SamplingParams):
        if params.seed is None:
            return [params] * n_prompts
        return [replace(params, seed=params.seed + i * params.n) for i in range(n_prompts)]
    params = list(params)
    if len(params) != n_prompts:
        raise ValueError(f"{len(params)} SamplingParams for {n_prompts} prompts: give one, or one per prompt")
    return params


def check_version(engine: Engine, version: int | None) -> None:
    if version is not None and version != engine.version:
        raise StaleWeightsError(
            f"asked to sample from policy version {version}, but the engine holds version "
            f"{engine.version}: call sync_weights(..., version={version}) first")


def finish_reason(reason: str | None) -> str:
    """Map an engine's finish reason onto "stop" / "length"; anything else (abort) is an error."""
    if reason in ("stop", "length"):
        return reason
    raise RuntimeError(f"generation ended with finish_reason={reason!r}")
