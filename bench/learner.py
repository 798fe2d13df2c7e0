"""Learner benchmark: padded micro-batches against token-budget packed ones (learner.max_tokens_per_micro_batch,
docs/packing.md), seconds per iteration's update and peak memory of each, side by side in one process.

    python -m bench.run learner      (or `make bench`)  -> bench/results/learner.json
    python -m bench.learner [--budget N] [--repeats R]   (prints the figures; writes nothing)

The model is model=tiny_chat's (the stand-in for a real instruct model: Qwen2, GQA, BPE), the algorithm GRPO
with its KL term (a reference pass), the sizes its recipe's (conf/recipe/tiny_cpu.yaml: 16 questions x 8
samples, one minibatch of 128, micro-batches of 64). The episodes are ChatML-length prompts and responses
whose lengths are drawn log-normal like GSM8K/MATH responses, scaled into the model's 256 tokens (a 5-10x
spread between a batch's short and long ones; the figures record it). Two learners start from the same
weights; each repeat runs the padded learner's update then the packed one's (the order alternates between
repeats), on the same episodes, so drift in machine load hits both alike. A third learner, padded with as many
micro-batches as the packed one (`padded_small_*`), separates what dropping the padding gains from what
smaller micro-batches alone gain on a CPU.

Peak memory: torch.cuda.max_memory_allocated on a GPU; on the CPU the peak resident set during the update
above the one before it, sampled every millisecond by a thread, in a process started with glibc's mmap
threshold fixed low so freed tensors go back to the OS at once (else the allocator keeps them and the second
path's peak would not show). That process is this module's own (`run()` starts it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

WARMUP, REPEATS = 1, 5
BUDGET = 2048  # tokens per packed micro-batch (~16 episodes here; the padded micro-batches hold 64)
PROMPT = (30, 50)  # a ChatML prompt of an arith question: ~40 tokens
RESPONSE_MEDIAN, RESPONSE_SIGMA, RESPONSE_MIN = 60, 0.6, 12


def lengths(n: int, room: int, seed: int = 0) -> list[tuple[int, int]]:
    """(prompt, response) lengths: responses log-normal (median RESPONSE_MEDIAN), cut to fit `room` tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = rng.randint(*PROMPT)
        r = int(rng.lognormvariate(math.log(RESPONSE_MEDIAN), RESPONSE_SIGMA))
        out.append((p, max(RESPONSE_MIN, min(r, room - p))))
    return out


def episodes(shape: list[tuple[int, int]], vocab: int, seed: int = 0):
    from rlreason.data.record import Question
    from rlreason.rollout import Episode

    g = torch.Generator().manual_seed(seed)
    out = []
    for i, (p, r) in enumerate(shape):
        ids = torch.randint(3, vocab, (p + r,), generator=g).tolist()
        adv = 1.0 if i % 2 else -1.0
        out.append(Episode(Question(id=f"q{i}", problem="p", answer="a"), ids[:p], ids[p:], [-1.0] * r, "", "stop",
                           reward=float(i % 2), advantages=[adv] * r))
    return out


class Peak:
    """Peak memory over a block: CUDA's allocator peak, or the resident set's rise sampled every ms (CPU)."""

    def __init__(self, device: str):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self, base: int) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self.rss() - base)

    def __enter__(self) -> Peak:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._thread = threading.Thread(target=self._sample, args=(self.rss(),), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()


def measure(budget: int = BUDGET, repeats: int = REPEATS, warmup: int = WARMUP) -> dict:
    from hydra import compose, initialize_config_dir

    from rlreason.config import register_configs
    from rlreason.learner import packing
    from rlreason.learner.learner import Learner
    from rlreason.model.load import resolve_model_path
    from rlreason.validate import validate

    register_configs()
    conf = str(Path(__file__).resolve().parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base=None):
        cfg = compose("config", overrides=["model=tiny_chat", "algo=grpo"])
    validate(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model_path = resolve_model_path(cfg.model, Path(cfg.cache_dir).expanduser())
    vocab = json.loads((Path(model_path) / "config.json").read_text())["vocab_size"]
    n = cfg.trainer.questions_per_iteration * cfg.rollout.samples_per_question
    shape = lengths(n, cfg.model.max_model_len)
    eps = episodes(shape, vocab)

    def learner(tokens: int | None) -> Learner:
        lcfg = cfg.learner.copy()
        lcfg.max_tokens_per_micro_batch = tokens
        return Learner(model_path, lcfg, cfg.algo, device=device, dtype=torch.float32, total_updates=1000,
                       pad_id=0, temperature=cfg.rollout.temperature, max_new_tokens=cfg.rollout.max_new_tokens)

    tokens = packing.tokens(eps)
    packed_micro = len(packing.token_bins(tokens, budget))
    # A control: padded micro-batches as many as the packed ones (so of about as many episodes), which tells
    # the gain from dropping padding apart from the gain of smaller micro-batches alone (cache effects).
    small = learner(None)
    small.cfg.micro_batch_size = -(-n // packed_micro)
    learners = {"padded": learner(None), "packed": learner(budget), "padded_small": small}
    seconds: dict[str, list[float]] = {k: [] for k in learners}
    peaks: dict[str, list[int]] = {k: [] for k in learners}
    for rep in range(warmup + repeats):
        for name in (list(learners) if rep % 2 == 0 else list(learners)[::-1]):  # alternating order
            with Peak(device) as peak:
                t0 = time.perf_counter()
                learners[name].update(eps)
                spent = time.perf_counter() - t0
            if rep >= warmup:
                seconds[name].append(spent)
                peaks[name].append(peak.peak)
    micro = cfg.learner.micro_batch_size
    padded_slots = sum(len(chunk) * max(tokens[i] for i in chunk)
                       for chunk in (range(s, min(s + micro, n)) for s in range(0, n, micro)))
    responses = sorted(r for _, r in shape)
    padded_s, packed_s = statistics.median(seconds["padded"]), statistics.median(seconds["packed"])
    return {
        "padded_learner_s": padded_s,
        "packed_learner_s": packed_s,
        "packed_speedup": padded_s / packed_s,
        "packed_speedup_best": min(seconds["padded"]) / min(seconds["packed"]),
        "packed_speedup_per_repeat": (pairs := [a / b for a, b in zip(seconds["padded"], seconds["packed"])]),
        "packed_speedup_median_of_repeats": statistics.median(pairs),
        "padded_small_learner_s": statistics.median(seconds["padded_small"]),
        "padded_small_micro_batch_size": small.cfg.micro_batch_size,
        "packed_speedup_over_padded_small": statistics.median(seconds["padded_small"]) / packed_s,
        "padded_small_peak_mib": max(peaks["padded_small"]) / 2**20,
        "padded_peak_mib": max(peaks["padded"]) / 2**20,
        "packed_peak_mib": max(peaks["packed"]) / 2**20,
        "peak_memory": "torch.cuda.max_memory_allocated" if device == "cuda" else "resident set rise, 1 ms samples",
        "padded_learner_s_all": seconds["padded"],
        "packed_learner_s_all": seconds["packed"],
        "device": device,
        "model": f"model=tiny_chat ({model_path})",
        "algo": f"grpo, kl_coef={cfg.algo.kl_coef}, epochs={cfg.learner.epochs}, "
                f"minibatch_size={cfg.learner.minibatch_size}",
        "episodes": n,
        "padded_micro_batches": -(-n // micro),
        "packed_micro_batches": packed_micro,
        "micro_batch_size": micro,
        "max_tokens_per_micro_batch": budget,
        "real_tokens": sum(tokens),
        "padded_token_slots": padded_slots,  # what the padded path's micro-batches compute
        "response_tokens_min_median_max": [responses[0], responses[len(responses) // 2], responses[-1]],
        "response_spread_p90_over_p10": responses[int(0.9 * n)] / responses[int(0.1 * n)],
        "repeats": repeats,
    }


def run() -> dict:
    """`make bench`'s section: the measurement in a child process (see the module docstring for why)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-m", "bench.learner", "--threads", str(torch.get_num_threads())],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode:
        raise RuntimeError(f"bench.learner exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=BUDGET, help="learner.max_tokens_per_micro_batch of the packed run")
    ap.add_argument("--repeats", type=int, default=REPEATS)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps(measure(a.budget, a.repeats)))


if __name__ == "__main__":
    main()
