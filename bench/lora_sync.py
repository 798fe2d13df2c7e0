"""LoRA weight sync into the running vLLM engine, the two ways side by side (docs/lora.md):

merged   (a) the learner's merged weights (base + adapter, under the base model's names) loaded in place
         with `reload_weights`: the path a full fine-tune takes (rlreason/learner/lora.py MergedWeights).
adapter  (b) vLLM's own LoRA (`enable_lora`): the adapter saved as a new peft dir per policy version and
         passed with each request as `LoRARequest(version)`; only the adapter's bytes move.

Each way runs in a process of its own (one in-process vLLM engine per process): a LoRA learner takes
`UPDATES` updates on random episodes, then the sync is timed (median of SYNCS, each a new policy version;
for (b) the first generate after it, which loads the adapter, minus the same generate with the adapter
already loaded), and the engine samples 32 sequences whose log-probs are compared with the learner's.

    PYTHONPATH=. python -m bench.lora_sync [--rank 8] [--model DIR]   # writes bench/results/lora_sync.json
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results") / "lora_sync.json"
SYNCS, UPDATES, PROMPTS, NEW_TOKENS = 5, 3, 32, 32


def learner_and_episodes(model_dir: str, rank: int):
    from rlreason.config import AlgoConfig, LearnerConfig, LoraConfig
    from rlreason.learner.learner import Learner
    from tests.learner.test_faults import episodes

    tok_pad = 0
    cfg = LearnerConfig(lr=1e-2, warmup_ratio=0.0, schedule="constant", epochs=1, minibatch_size=8,
                        micro_batch_size=8, lora=LoraConfig(r=rank))
    learner = Learner(model_dir, cfg, AlgoConfig(name="grpo", kl_coef=0.0), device="cpu", dtype=torch.float32,
                      total_updates=100, pad_id=tok_pad, temperature=1.0)
    for _ in range(UPDATES):
        learner.update(episodes(8))
    return learner


def one_way(way: str, model_dir: str, rank: int) -> dict:
    import vllm

    from rlreason.config import EngineConfig
    from rlreason.engine import _vllm_compat as compat
    from rlreason.engine.base import SamplingParams
    from rlreason.rollout import Episode
    from tests.learner.test_faults import episodes

    torch.set_num_threads(1)
    learner = learner_and_episodes(model_dir, rank)
    vllm_llm = vllm.LLM
    if way == "adapter":
        vllm.LLM = functools.partial(vllm_llm, enable_lora=True, max_lora_rank=max(rank, 8), max_loras=2)
    llm = compat.build_llm(EngineConfig(name="vllm"), model_dir, model_dir, dtype="float32", seed=0, max_model_len=256)
    vllm.LLM = vllm_llm
    prompts = [ep.prompt_ids for ep in episodes(PROMPTS, seed=1)]
    params = compat.sampling_params(SamplingParams(n=1, temperature=1.0, top_p=1.0, max_tokens=NEW_TOKENS,
                                                   ignore_eos=True), seed=0)
    scratch = Path(tempfile.mkdtemp(prefix="lora-sync-"))
    request = None
    seconds, moved = [], 0

    def generate(req):
        return llm.generate([compat.tokens_prompt(p) for p in prompts], [params] * len(prompts), use_tqdm=False,
                            lora_request=req)

    for version in range(1, SYNCS + 1):
        t = time.perf_counter()
        if way == "merged":
            weights = list(learner.named_weights())
            compat.push_weights(llm, iter(weights), None)
            llm.reset_prefix_cache()
            seconds.append(time.perf_counter() - t)
            moved = sum(w.numel() * w.element_size() for _, w in weights)
        else:
            out = scratch / f"v{version}"
            learner.policy.save_pretrained(out)
            request = vllm.lora.request.LoRARequest(f"policy-v{version}", version, str(out))
            save_s = time.perf_counter() - t
            t = time.perf_counter()
            generate(request)  # loads the new adapter
            first = time.perf_counter() - t
            t = time.perf_counter()
            generate(request)
            seconds.append(save_s + max(0.0, first - (time.perf_counter() - t)))
            moved = (out / "adapter_model.safetensors").stat().st_size
    outs = generate(request)
    eps = [Episode(e.question, p, list(o.outputs[0].token_ids), compat.sampled_logprobs(o.outputs[0]), "", "length")
           for e, p, o in zip(episodes(PROMPTS, seed=1), prompts, outs)]
    mine = learner.logprobs(eps)
    gaps = [abs(a - b) for ep, lp in zip(eps, mine) for a, b in zip(ep.logprobs, lp)]
    t = time.perf_counter()
    generate(request)
    gen_s = time.perf_counter() - t
    compat.shutdown(llm)
    return {"way": way, "rank": rank, "sync_seconds_median": statistics.median(seconds), "sync_seconds": seconds,
            "bytes_moved": moved, "generate_seconds": gen_s,
            "logprob_mismatch_mean": sum(gaps) / len(gaps), "logprob_mismatch_max": max(gaps),
            "tokens": len(gaps), "learner_vs_engine_tokens": "engine-sampled, scored by the learner"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--model", default=None, help="model dir (default: a random tiny model)")
    ap.add_argument("--way", choices=("merged", "adapter"), default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.way:
        print(json.dumps(one_way(a.way, a.model, a.rank)))
        return
    from rlreason.model.tiny import random_tiny_model

    model = a.model or random_tiny_model(tempfile.mkdtemp(prefix="lora-bench-"), seed=0)
    rows = []
    for way in ("merged", "adapter"):
        proc = subprocess.run([sys.executable, "-m", "bench.lora_sync", "--way", way, "--model", model,
                               "--rank", str(a.rank)], capture_output=True, text=True)
        if proc.returncode:
            rows.append({"way": way, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    RESULTS.write_text(json.dumps({"model": "random tiny (rlreason/model/tiny.py)" if not a.model else a.model,
                                   "syncs": SYNCS, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
