"""The engine and grader of a data-parallel run: each call's requests are split across the ranks (one
engine per rank) and the results gathered back in request order on every rank.

Every rank makes the same calls with the same arguments (the loop runs replicated), so the wrappers are
collectives. A request carries its own seed (`per_prompt` spreads one call's seed over its prompts by
global request index), so with vLLM the rank that runs a request draws exactly the samples a
single-process run draws for it. (engine=hf seeds a batch, not a request: sharded, it samples validly
but not the single-process numbers.)

With engine.tensor_parallel_size=T > 1, each T consecutive ranks are one vLLM engine (its `external_launcher`
executor, rlreason/engine/_vllm_compat.py): requests are split across the W/T engines, and every rank of
an engine sends it the same requests (vLLM's TP ranks each schedule and sample, and stay in step only
if they see identical calls), so they all get the same completions. Engines do not wait for each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import torch

from rlreason.distributed import Dist
from rlreason.distributed.shard import balanced, contiguous
from rlreason.engine.base import Completion, SamplingParams, per_prompt


class ShardedEngine:
    """`Engine` over one engine per rank. Requests are cut into contiguous runs of near-equal budget
    (n x max_tokens: VinePPO's states ask for what the trajectory has left), so ranks finish together and
    the states of one trajectory, which share prefixes, mostly land in one engine's prefix cache."""

    def __init__(self, engine, dist: Dist, tensor_parallel: int = 1):
        if tensor_parallel < 1 or dist.world % tensor_parallel:
            raise ValueError(f"tensor_parallel={tensor_parallel} must divide the world size {dist.world}")
        self.local, self.dist, self.tp = engine, dist, tensor_parallel
        self.engines, self.engine_index = dist.world // tensor_parallel, dist.rank // tensor_parallel
        self.seconds = {"generate": 0.0, "gather": 0.0, "sync": 0.0}
        self.sync_peak_bytes = 0  # largest extra memory a weight sync needed (one gathered tensor)

    @property
    def version(self) -> int:
        return self.local.version

    def generate(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams],
                 version: int | None = None) -> list[list[Completion]]:
        return self._sharded(self.local.generate, prompts, params, version)

    def continue_from(self, prefixes: list[list[int]], params: SamplingParams | Sequence[SamplingParams],
                      version: int | None = None) -> list[list[Completion]]:
        return self._sharded(self.local.continue_from, prefixes, params, version)

    def _sharded(self, fn, prompts, params, version) -> list[list[Completion]]:
        each = per_prompt(params, len(prompts))
        mine = balanced([p.n * p.max_tokens for p in each], self.engines)[self.engine_index]
        t0 = time.perf_counter()
        # Every rank calls its engine, even with no requests: the version check runs everywhere.
        outs = fn([prompts[i] for i in mine], [each[i] for i in mine], version=version)
        t1 = time.perf_counter()
        # Runs are contiguous and in engine order; an engine's ranks hold the same run, keep its first's.
        parts = self.dist.all_gather(outs)[::self.tp]
        self.seconds["generate"] += t1 - t0
        self.seconds["gather"] += time.perf_counter() - t1
        return [group for part in parts for group in part]

    def sync_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int) -> None:
        t0 = time.perf_counter()
        self.local.sync_weights(named_tensors, version)
        self.seconds["sync"] += time.perf_counter() - t0

    def reset_prefix_cache(self) -> None:
        self.local.reset_prefix_cache()

    def sleep(self) -> None:
        self.local.sleep()

    def wake_up(self) -> None:
        self.local.wake_up()

    def stats(self) -> dict[str, float]:
        return self.local.stats()  # this rank's engine (its tensor-parallel group's)

    def close(self) -> None:
        self.local.close()


class ShardedGrader:
    """The grader over the ranks: contiguous equal slices graded locally, verdicts gathered in order."""

    def __init__(self, grader, dist: Dist):
        self.grader, self.dist = grader, dist

    def grade(self, responses: list[str], golds: list[str], truncated: list[bool] | None = None) -> list:
        truncated = truncated if truncated is not None else [False] * len(responses)
        if not len(responses) == len(golds) == len(truncated):
            raise ValueError(f"grade: {len(responses)} responses, {len(golds)} golds, {len(truncated)} flags")
        r = contiguous(len(responses), self.dist.rank, self.dist.world)
        local = self.grader.grade(responses[r.start:r.stop], golds[r.start:r.stop], truncated[r.start:r.stop])
        return [v for part in self.dist.all_gather(local) for v in part]

    def close(self) -> None:
        self.grader.close()
