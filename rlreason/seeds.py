"""Sampling seeds: every sample of a run gets its own seed, a pure function of where it is drawn.

A request for n samples seeded s draws sample j with seed s + j (vLLM's parallel-sampling rule, which
both engines follow; see rlreason/engine/base.py). So a seed names one *sample*, and a request reserves
n consecutive ones. `SeedStream(run_seed, iteration).take(phase, count)` reserves the next `count`
seeds of that phase in that iteration; the engines spread one call's block over its prompts
(prompt i at base + i * n). Nothing here is checkpointed: an iteration replayed after a resume asks for
the same blocks in the same order and gets the same seeds.

Why distinctness must hold in the low 32 bits: torch's CPU generator (mt19937, which vLLM-CPU and the
HF engine seed per request) keeps only the low 32 bits of a seed (`manual_seed(1)` and
`manual_seed(1 + 2**32)` draw the same numbers; tests/test_seeds.py checks this), while CUDA's Philox
uses all 64. A seed here is therefore

    seed = run_seed * 2**32 + (offset(run_seed) + local) mod 2**32
    local = iteration * 2**20 + phase_start + index        (index < phase size, iteration < 4096)

`local` is injective in (iteration, phase, index) and below 2**32, and adding a constant mod 2**32 is a
bijection, so within a run no two samples share a seed on either kind of generator (by construction,
not by a collision argument). `offset` (a hash of the run seed) makes runs with different seeds draw
different numbers on CPU too; the high word separates them fully on GPU. Run seeds go up to 2**30 - 1, so
seeds stay below 2**63 (int64, which vLLM's request serialisation and torch accept).

Per iteration, each phase has a fixed share of 2**20 seeds (below); a phase that needs more raises
SeedSpaceExhausted instead of reusing seeds. The sizes cover the paper's settings with room to spare
(64 questions x 8 samples of rollouts; ~8,000 MC states x K = 9; all of MATH's 5,000 test questions x 16).
"""

from __future__ import annotations

import hashlib

ITERATION_BITS = 12  # iterations 0 .. 4095
BLOCK = 1 << 20  # seeds per iteration
# phase -> (start, size) inside an iteration's block; the sizes add up to BLOCK.
PHASES: dict[str, tuple[int, int]] = {
    "rollout": (0, 1 << 16),
    "selection": (1 << 16, 1 << 17),
    "eval_greedy": (3 << 16, 1 << 16),
    "eval_sampled": (1 << 18, 1 << 18),
    "mc": (1 << 19, 1 << 19),
}
MAX_ITERATION = (1 << ITERATION_BITS) - 1
MAX_RUN_SEED = (1 << 30) - 1  # keeps base + j below 2**63 even when the low word carries


class SeedSpaceExhausted(RuntimeError):
    """A phase asked for more seeds in one iteration than its share."""


def _offset(run_seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(str(run_seed).encode(), digest_size=4).digest(), "big")


def sample_seed(run_seed: int, iteration: int, phase: str, index: int) -> int:
    """The seed of the `index`-th sample drawn in `phase` of `iteration` of the run seeded `run_seed`."""
    if not 0 <= run_seed <= MAX_RUN_SEED:
        raise ValueError(f"rlreason: seed={run_seed} must be in [0, {MAX_RUN_SEED}]")
    if not 0 <= iteration <= MAX_ITERATION:
        raise ValueError(f"rlreason: iteration {iteration} is past the {MAX_ITERATION} the seed layout holds")
    start, size = PHASES[phase]
    if not 0 <= index < size:
        raise SeedSpaceExhausted(f"rlreason: phase {phase!r} of iteration {iteration} needs more than {size} "
                                 "sampling seeds (see rlreason/seeds.py to resize the phases)")
    local = iteration * BLOCK + start + index
    return (run_seed << 32) + ((_offset(run_seed) + local) & 0xFFFFFFFF)


class SeedStream:
    """The seeds of one iteration, handed out in order per phase."""

    def __init__(self, run_seed: int, iteration: int):
        self.run_seed, self.iteration = run_seed, iteration
        self.used: dict[str, int] = dict.fromkeys(PHASES, 0)

    def take(self, phase: str, count: int) -> int:
        """First of `count` fresh seeds (base, base + 1, ..., base + count - 1 are all reserved).

        The base's low 32 bits may wrap past 2**32 inside the block; the engine's `base + j` then
        carries into the high word, and the low 32 bits still match `sample_seed(..., index + j)`."""
        first = self.used[phase]
        if count > 0:
            sample_seed(self.run_seed, self.iteration, phase, first + count - 1)  # raises if the block overflows
        self.used[phase] = first + count
        return sample_seed(self.run_seed, self.iteration, phase, first)
