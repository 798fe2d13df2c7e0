"""Engine benchmark: the same work through engine=hf and engine=vllm, in one process.

throughput  64 arith prompts x 8 samples x 64 new tokens at T = 1, eos ignored so both engines generate
            exactly 64 tokens per sample. Unseeded on both engines (the same work); vLLM is also timed
            with a seed per request, as the training loop sends them: per-request generators cost it
            ~5% on CPU.
mc          the VinePPO pattern: 16 trajectories x 4 cut points x K = 8 continuations of prompt + partial
            response, with vLLM's prefix cache on and off (a second engine, started after the first).
sync        one weight push into the running vLLM engine, prefix-cache reset included (median of 5).

Engines run with their config defaults (conf/engine/*.yaml), on the trained tiny model
(rlreason/model/assets/tiny-arith) when it is there, else on a random-init one.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from rlreason.config import EngineConfig
from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.engine import Engine, SamplingParams, make_engine
from rlreason.model.tiny import ASSETS, random_tiny_model

PROMPTS, SAMPLES, NEW_TOKENS = 64, 8, 64
TRAJECTORIES, CUTS, K = 16, 4, 8
REPEATS = 3  # timings are the best of REPEATS: other work on a shared machine only ever slows a run down
SYNCS = 5
MAX_MODEL_LEN = 256


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def tiny_model() -> tuple[str, str]:
    if (ASSETS / "config.json").exists():
        return str(ASSETS), "tiny-arith (trained)"
    return random_tiny_model(tempfile.mkdtemp(prefix="bench-tiny-")), "tiny (random init)"


def start(name: str, path: str, tokenizer: Any, **overrides: Any) -> tuple[Engine, float]:
    cfg = EngineConfig(name=name, **overrides)
    secs, engine = timed(lambda: make_engine(cfg, path, tokenizer, dtype="float32", seed=0,
                                             max_model_len=MAX_MODEL_LEN))
    return engine, secs


def warm_up(engine: Engine, prompts: list[list[int]]) -> None:
    engine.generate(prompts[:4], SamplingParams(n=2, max_tokens=8, seed=0))  # first-call allocations


def tokens_per_s(engine: Engine, prompts: list[list[int]], seed: int | None = None) -> float:
    params = SamplingParams(n=SAMPLES, temperature=1.0, max_tokens=NEW_TOKENS, ignore_eos=True, seed=seed)
    warm_up(engine, prompts)
    best = float("inf")
    for _ in range(REPEATS):
        secs, outs = timed(lambda: engine.generate(prompts, params))
        best = min(best, secs)
    tokens = sum(len(c.token_ids) for group in outs for c in group)
    if tokens != PROMPTS * SAMPLES * NEW_TOKENS:
        raise RuntimeError(f"expected {PROMPTS * SAMPLES * NEW_TOKENS} tokens, got {tokens}: not the same work")
    return tokens / best


def mc_states(engine: Engine, prompts: list[list[int]]) -> list[list[int]]:
    """Prompt + the first j/(CUTS+1) of a sampled response, j = 1..CUTS, for each trajectory."""
    trajectories = engine.generate(prompts[:TRAJECTORIES], SamplingParams(max_tokens=NEW_TOKENS, seed=1))
    return [p + c.token_ids[: len(c.token_ids) * j // (CUTS + 1)]
            for p, (c,) in zip(prompts, trajectories) for j in range(1, CUTS + 1)]


def mc(engine: Engine, states: list[list[int]]) -> tuple[float, float | None]:
    """Continuation tokens per second and the prefix-cache hit rate (None: not exposed).

    The cache is emptied before each repeat, so hits come from the pattern itself: the K continuations
    of a state, and the later cut points of a trajectory, share the earlier prefix.
    """
    params = SamplingParams(n=K, max_tokens=NEW_TOKENS, seed=2)
    best, hit_rate = float("inf"), None
    for _ in range(REPEATS):
        engine.reset_prefix_cache()
        before = engine.stats()
        secs, outs = timed(lambda: engine.continue_from(states, params))
        after = engine.stats()
        best = min(best, secs)
        queries = after.get("prefix_cache_queries", 0.0) - before.get("prefix_cache_queries", 0.0)
        hit_rate = (after.get("prefix_cache_hits", 0.0) - before.get("prefix_cache_hits", 0.0)) / queries if queries else None
    return sum(len(c.token_ids) for group in outs for c in group) / best, hit_rate


def sync_seconds(engine: Engine, path: str) -> float:
    from transformers import AutoModelForCausalLM

    weights = list(AutoModelForCausalLM.from_pretrained(path).state_dict().items())
    seconds = []
    for version in range(1, SYNCS + 1):
        t = time.perf_counter()
        engine.sync_weights(weights, version)
        seconds.append(time.perf_counter() - t)
    return statistics.median(seconds)


def run() -> dict[str, Any]:
    from transformers import AutoTokenizer

    path, model = tiny_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    _, test = generate_splits(0, PROMPTS, ArithSpec(), seed=0)
    prompts = [tokenizer(f"{q.problem}\n")["input_ids"] for q in test]  # conf/data/arith.yaml's template

    hf, hf_start = start("hf", path, tokenizer)
    hf_tps = tokens_per_s(hf, prompts)
    hf.close()

    vllm, vllm_start = start("vllm", path, tokenizer)
    vllm_tps = tokens_per_s(vllm, prompts)
    vllm_seeded_tps = tokens_per_s(vllm, prompts, seed=0)
    states = mc_states(vllm, prompts)
    mc_on, hit_rate = mc(vllm, states)
    sync = sync_seconds(vllm, path)
    vllm.close()

    vllm_off, _ = start("vllm", path, tokenizer, enable_prefix_caching=False)
    warm_up(vllm_off, prompts)
    mc_off, _ = mc(vllm_off, states)
    vllm_off.close()

    defaults = EngineConfig(name="vllm")
    return {
        "model": model,
        "hf_tokens_per_s": hf_tps,
        "vllm_tokens_per_s": vllm_tps,
        "vllm_over_hf": vllm_tps / hf_tps,
        "vllm_tokens_per_s_seeded": vllm_seeded_tps,
        "mc_tokens_per_s_prefix_cache_on": mc_on,
        "mc_tokens_per_s_prefix_cache_off": mc_off,
        "mc_prefix_cache_speedup": mc_on / mc_off,
        "mc_prefix_cache_hit_rate": hit_rate if hit_rate is not None else "not exposed",
        "mc_states": len(states),
        "sync_seconds": sync,
        "hf_start_seconds": hf_start,
        "vllm_start_seconds": vllm_start,
        "hf_batch_size": defaults.hf_batch_size,
        "vllm_max_num_seqs": defaults.max_num_seqs,
    }
