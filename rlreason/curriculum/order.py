"""Seeded randomness for the curricula: the question orders and per-iteration generators.

Everything random is derived from (seed, epoch) or (seed, iteration, purpose) rather than carried in a
live generator, so a redone iteration draws the same numbers and the only state to checkpoint is
where the epoch stands. Two orders share one interface (`begin`, `take`, state): EpochOrder walks epochs
without replacement (the default); FreshOrder (`curriculum.with_replacement`) draws a fresh random
subset every iteration, as the reference.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from typing import Any


def derived_rng(seed: int, iteration: int, purpose: str) -> random.Random:
    # A str seed is hashed with SHA-512: stable across processes, unlike hash().
    return random.Random(f"{seed}/{iteration}/{purpose}")


class EpochOrder:
    """Indices 0..n-1 without replacement: a seeded permutation per epoch, consumed front to back."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self.epoch, self.perm, self.pos = -1, [], 0

    def begin(self, iteration: int) -> None:
        """An epoch runs across iterations: nothing to do."""

    def _next(self, avoid: Collection[int]) -> int:
        if self.pos >= len(self.perm):
            self.epoch += 1
            perm = list(range(self.n))
            random.Random(f"{self.seed}/epoch/{self.epoch}").shuffle(perm)
            # An epoch ending inside a batch: the batch's questions go last in the new epoch, so the
            # batch has no duplicates and every question still comes once per epoch.
            self.perm = [i for i in perm if i not in avoid] + [i for i in perm if i in avoid]
            self.pos = 0
        self.pos += 1
        return self.perm[self.pos - 1]

    def take(self, k: int, accept: Callable[[int], bool] | None = None,
             exclude: Collection[int] = ()) -> list[int]:
        """The next k indices not in `exclude` that pass `accept`. A rejected index is used up for this
        epoch; after about an epoch's worth of rejections it gives up and returns fewer than k."""
        out: list[int] = []
        chosen = set(exclude)
        for _ in range(self.n + k):
            if len(out) == k:
                break
            i = self._next(chosen)
            if i in chosen or (accept is not None and not accept(i)):
                continue
            out.append(i)
            chosen.add(i)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "perm": list(self.perm), "pos": self.pos}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("kind") == FreshOrder.kind:
            raise ValueError("the checkpoint's curriculum drew with replacement (curriculum.with_replacement=true)"
                             ", this run walks epochs: resume with the same setting")
        if d["perm"] and sorted(d["perm"]) != list(range(self.n)):
            raise ValueError(f"epoch order is over {len(d['perm'])} questions, the train set has {self.n}")
        self.epoch, self.perm, self.pos = int(d["epoch"]), list(d["perm"]), int(d["pos"])


class FreshOrder:
    """A fresh random subset every iteration: a permutation of 0..n-1 seeded by (seed, iteration), consumed
    front to back within the iteration, so an iteration never repeats a question while a question may
    come back in any later iteration. The reference (McGill-NLP/VinePPO OnPolicyEpisodeGenerator with
    `dataset_sample_with_replacement: true`, set in configs/polIter_*.jsonnet) takes the first `batch`
    rows of `dataset.shuffle(seed=seed + iteration)`. Stateless: a resumed iteration draws the same."""

    kind = "fresh"

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self.perm: list[int] = []
        self.pos = 0

    def begin(self, iteration: int) -> None:
        self.perm = list(range(self.n))
        random.Random(f"{self.seed}/fresh/{iteration}").shuffle(self.perm)
        self.pos = 0

    def take(self, k: int, accept: Callable[[int], bool] | None = None,
             exclude: Collection[int] = ()) -> list[int]:
        """The next k indices of this iteration's permutation not in `exclude` that pass `accept`; fewer
        when the permutation runs out (every question considered once this iteration)."""
        if not self.perm:
            raise RuntimeError("FreshOrder.take before begin(iteration)")
        out: list[int] = []
        excluded = set(exclude)
        while len(out) < k and self.pos < self.n:
            i = self.perm[self.pos]
            self.pos += 1
            if i not in excluded and (accept is None or accept(i)):
                out.append(i)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("kind") != self.kind:
            raise ValueError("the checkpoint's curriculum walked epochs without replacement, this run draws with "
                             "replacement (curriculum.with_replacement=true): resume with the same setting")


def make_order(n: int, seed: int, with_replacement: bool) -> EpochOrder | FreshOrder:
    return FreshOrder(n, seed) if with_replacement else EpochOrder(n, seed)
