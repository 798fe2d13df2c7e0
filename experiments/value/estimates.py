"""Value estimates of a list of prefixes: Monte-Carlo (the ground truth and MC-K) and the PPO critic.

Monte-Carlo values are graded exactly as VinePPO's (rlreason.algo.vineppo.assign_vineppo_advantages):
each continuation gets the token budget the trajectory has left (`max_new_tokens` minus the prefix's
response tokens), the text graded is the prefix's response text + the continuation's, and a
continuation cut by the budget is graded truncated (reward 0).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rlreason.algo import vineppo
from rlreason.learner.critic import ValueModel

SOURCES = ("fresh", "truth")


def continuation_rewards(engine, grader, prefixes, *, n: int, temperature: float, top_p: float,
                         max_new_tokens: int, stop: tuple[str, ...], seed: int | None, version: int | None,
                         completions: list | None = None) -> tuple[list[list[float]], int]:
    """`n` graded continuations of every prefix, one engine call, exactly as VinePPO's MC
    (rlreason.algo.vineppo.continuation_rewards: prefix i takes seeds seed + i * n + j). Returns the rewards
    per prefix and the tokens generated; `completions`, when given, gets each prefix's completions."""
    starts = [len(p.response_ids) for p in prefixes]
    # Graded against the Question, as VinePPO's MC is: a reward function reads its record (Countdown has
    # no gold answer string; its `answer` is empty and every continuation would grade 0).
    rewards, outs = vineppo.continuation_rewards(
        engine, grader, [list(p.key) for p in prefixes], [p.text for p in prefixes],
        [p.question for p in prefixes], starts, [max_new_tokens - s for s in starts], k=n,
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=stop, seed=seed, version=version)
    if completions is not None:
        completions.extend(outs)
    return rewards, sum(len(c.token_ids) for conts in outs for c in conts)


def samples_needed(k_truth: int, ks: list[int], source: str) -> int:
    return k_truth + (sum(ks) if source == "fresh" else 0)


def standard_error(rewards: list[float]) -> float:
    """Standard error of the mean: sample standard deviation (n - 1) / sqrt(n); 0 for one sample."""
    n = len(rewards)
    if n < 2:
        return 0.0
    mean = sum(rewards) / n
    return math.sqrt(sum((r - mean) ** 2 for r in rewards) / (n - 1) / n)


def split_estimates(rewards: list[float], k_truth: int, ks: list[int], source: str) -> dict:
    """The ground truth (mean of the first `k_truth` rewards), its standard error, and MC-K per K.

    source "fresh": MC-K averages the K rewards after the truth's and the previous Ks' (every estimate
    its own samples, none shared with the truth). "truth": MC-K averages the first K of the truth's own
    rewards, as the reference's MCValueActionRankingAnalyzer (it subsamples the 256 ground-truth returns),
    which correlates the estimate's error with the truth's."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: expected one of {SOURCES}")
    if len(rewards) < samples_needed(k_truth, ks, source):
        raise ValueError(f"{len(rewards)} rewards, {samples_needed(k_truth, ks, source)} needed")
    truth = rewards[:k_truth]
    mc, start = {}, k_truth
    for k in ks:
        part = rewards[start:start + k] if source == "fresh" else truth[:k]
        mc[k] = sum(part) / k
        start += k
    return {"truth": sum(truth) / k_truth, "truth_se": standard_error(truth), "mc": mc}


def load_critic(checkpoint: Path, device: str) -> ValueModel:
    """The checkpoint's critic: ValueModel on the policy's architecture, then its own state dict (its
    trained backbone and head) over it."""
    critic = ValueModel(str(checkpoint / "policy"))
    critic.load(checkpoint / "critic.safetensors")
    return critic.to(device).eval()


@torch.no_grad()
def critic_values(critic: ValueModel, sequences: list[list[int]], pad_id: int, device: str,
                  batch_size: int = 32, bf16: bool = False) -> list[float]:
    """V(prefix) for every token sequence, read where the learner reads it.

    ValueModel.forward gives position i the value of the state ending at token i (rlreason/learner/batch.py:
    response token j, at position P - 1 + j, carries V(prompt + response[:j]), the value GAE uses before
    that token is emitted). So V(prefix) is position len(prefix) - 1. forward drops the last position
    (it has no next token), so one pad token is appended; causal attention keeps it out of position
    len(prefix) - 1. `bf16`: under bfloat16 autocast, as the learner computes values on a GPU."""
    out: list[float] = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        length = max(len(s) for s in chunk) + 1
        ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        for i, s in enumerate(chunk):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s) + 1] = 1
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            values = critic(ids.to(device), mask.to(device))
        out += [values[i, len(s) - 1].item() for i, s in enumerate(chunk)]
    return out
