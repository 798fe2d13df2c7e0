"""The sampling-seed layout: distinct seeds for every sample of a run, on 32- and 64-bit generators."""

from __future__ import annotations

import pytest
import torch

from rlreason.engine.base import SamplingParams
from rlreason.seeds import (
    BLOCK,
    MAX_ITERATION,
    MAX_RUN_SEED,
    PHASES,
    SeedSpaceExhausted,
    SeedStream,
    sample_seed,
)

# Requests per phase of one iteration, as (phase, prompts, samples each): the paper's sizes (64 questions
# x 8, LILO's pool of 4 x 64 x 8, ~4,000 MC states x K = 9, MATH-500 x 16 sampled + greedy), with the
# filter_groups curriculum's second round as a second selection call.
PAPER_ITERATION = [("selection", 256, 8), ("selection", 32, 8), ("rollout", 64, 8), ("mc", 4000, 9),
                   ("eval_sampled", 500, 16), ("eval_greedy", 500, 1)]


def _sample_seeds(run_seed: int, iterations: list[int]) -> list[int]:
    """Every sample's seed, expanded with the engines' rule (prompt i of a call at base + i*n, sample j at +j)."""
    out = []
    for it in iterations:
        stream = SeedStream(run_seed, it)
        for phase, prompts, n in PAPER_ITERATION:
            base = stream.take(phase, prompts * n)
            out += [base + i * n + j for i in range(prompts) for j in range(n)]
    return out


@pytest.mark.parametrize("run_seed", [0, 7, MAX_RUN_SEED])
def test_every_sample_of_a_run_has_its_own_seed_even_modulo_2_to_the_32(run_seed):
    seeds = _sample_seeds(run_seed, [0, 1, 2, 3, 650, MAX_ITERATION])
    assert len(set(seeds)) == len(seeds)
    assert len({s & 0xFFFFFFFF for s in seeds}) == len(seeds)  # what torch's CPU generator keeps
    assert all(0 <= s < 2**63 for s in seeds)


def test_a_replayed_iteration_gets_the_same_seeds():
    assert _sample_seeds(3, [5]) == _sample_seeds(3, [5])
    assert _sample_seeds(3, [5]) != _sample_seeds(4, [5])
    # different run seeds differ in the low word too (the part a CPU generator uses)
    assert {s & 0xFFFFFFFF for s in _sample_seeds(0, [1])[:512]} != {s & 0xFFFFFFFF for s in _sample_seeds(1, [1])[:512]}


def test_phases_tile_the_iteration_block():
    spans = sorted(PHASES.values())
    assert spans[0][0] == 0 and sum(size for _, size in spans) == BLOCK
    assert all(a + sa == b for (a, sa), (b, _) in zip(spans, spans[1:]))


def test_a_phase_that_outgrows_its_share_raises_instead_of_reusing_seeds():
    stream = SeedStream(0, 1)
    size = PHASES["rollout"][1]
    stream.take("rollout", size - 1)
    stream.take("rollout", 1)
    with pytest.raises(SeedSpaceExhausted, match="rollout"):
        stream.take("rollout", 1)
    with pytest.raises(ValueError, match="iteration"):
        sample_seed(0, MAX_ITERATION + 1, "mc", 0)
    with pytest.raises(ValueError, match="seed"):
        sample_seed(-1, 0, "mc", 0)


def test_torch_cpu_generators_keep_only_the_low_32_bits_of_a_seed():
    """The premise of the layout: on CPU, seeds equal modulo 2**32 draw the same numbers."""
    def draw(seed: int) -> torch.Tensor:
        return torch.empty(8).exponential_(generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(12345), draw(12345 + 2**32))
    assert not torch.equal(draw(12345), draw(12346))
    top = sample_seed(MAX_RUN_SEED, MAX_ITERATION, "mc", PHASES["mc"][1] - 1)
    draw(top + 8)  # the largest seed a run can ask for (plus a request's n) is accepted


@pytest.mark.vllm
def test_vllm_accepts_the_largest_seeds_and_replays_them(vllm_engine, initial_weights, tiny_tokenizer):
    vllm_engine.sync_weights(initial_weights.items(), 0)
    prompts = [tiny_tokenizer(t)["input_ids"] for t in ("1+2=", "3*4-5=")]
    top = sample_seed(MAX_RUN_SEED, MAX_ITERATION, "mc", PHASES["mc"][1] - 4)
    params = SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=top)
    a = vllm_engine.generate(prompts[:2], params)
    b = vllm_engine.generate(prompts[:2], params)
    assert [[c.token_ids for c in cs] for cs in a] == [[c.token_ids for c in cs] for cs in b]
    low = vllm_engine.generate(prompts[:2], SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=top & 0xFFFFFFFF))
    # on vLLM-CPU only the low word counts (on CUDA the high word would give other samples)
    if not torch.cuda.is_available():
        assert [[c.token_ids for c in cs] for cs in a] == [[c.token_ids for c in cs] for cs in low]
