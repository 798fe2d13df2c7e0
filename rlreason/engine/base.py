"""The one interface every part of the loop uses to sample from the policy.

Prompts and prefixes go in as token ids (never re-tokenised, so a VinePPO continuation starts from
exactly the tokens the trajectory produced). Log-probs come back at the sampling temperature, the
ones PPO ratios need.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
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
    seed: int | None = None


@dataclass
class Completion:
    token_ids: list[int]
    text: str
    logprobs: list[float]  # log p(token) of each sampled token under the temperature-scaled policy
    finish_reason: str  # "stop" (eos / stop string) or "length"


class StaleWeightsError(RuntimeError):
    """Raised when asked to generate for a policy version the engine has not been synced to."""


class Engine(Protocol):
    version: int  # policy version of the weights the engine holds

    def generate(
        self, prompts: list[list[int]], params: SamplingParams, version: int | None = None
    ) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in prompt order. All prompts go in one batch.

        `version`, when given, must equal the engine's synced version, else StaleWeightsError.
        """
        ...

    def continue_from(
        self, prefixes: list[list[int]], params: SamplingParams, version: int | None = None
    ) -> list[list[Completion]]:
        """`params.n` continuations of each prefix (prompt + partial response, token ids)."""
        ...

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int) -> None:
        """Load new policy weights in place (no restart), reset the prefix cache, set `version`."""
        ...

    def reset_prefix_cache(self) -> None: ...

    def sleep(self) -> None:
        """Release accelerator memory while the learner trains (no-op where unsupported)."""
        ...

    def wake_up(self) -> None: ...

    def stats(self) -> dict[str, float]:
        """Counters since start: generated tokens, prefix-cache hit rate where known."""
        ...

    def close(self) -> None: ...


@dataclass
class EngineStats:
    generated_tokens: int = 0
    requests: int = 0
    extra: dict[str, float] = field(default_factory=dict)
