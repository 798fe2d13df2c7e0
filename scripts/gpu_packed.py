"""The GPU check's packed-attention row (learner.max_tokens_per_micro_batch, rlreason/learner/packing.py):
the same episodes' log-probs padded and packed into one padding-free row, on the check's model and device.

On a GPU the learner runs in bf16 autocast and the packed row goes through flash-attention's varlen kernel
when flash-attn is installed (else per-span SDPA); the padded batch through SDPA with its padding mask. Two
bf16 paths round differently, so the tolerance is bf16's own error on these numbers: the packed log-probs'
mean |difference| from the padded ones must be at most 2x the padded bf16 log-probs' mean |difference| from
the same padded pass in fp32, plus 1e-3 (and finite). On the CPU both paths are fp32: within 1e-5.
"""

from __future__ import annotations

import contextlib
import time

import torch

CPU_TOL, BF16_FACTOR, BF16_SLACK = 1e-5, 2.0, 1e-3


def varied_episodes(n: int, seq: int, vocab: int, seed: int = 0):
    """`n` episodes of 1/8 to all of `seq` tokens (a quarter of each the prompt): a real batch's spread."""
    from rlreason.data.record import Question
    from rlreason.rollout import Episode

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        total = int(torch.randint(max(8, seq // 8), seq + 1, (1,), generator=g))
        ids = torch.randint(4, vocab, (total,), generator=g).tolist()
        p = max(1, total // 4)
        out.append(Episode(Question(id=f"q{i}", problem="p", answer="a"), ids[:p], ids[p:], [0.0] * (total - p), "",
                           "length", reward=float(i % 2), advantages=[1.0 if i % 2 else -1.0] * (total - p)))
    return out


def check_packed(c) -> str:
    """Padded against packed log-probs (`c`: scripts/gpu_check.py's Check)."""
    from transformers import AutoModelForCausalLM

    from rlreason.learner import packing
    from rlreason.learner.batch import pack
    from rlreason.learner.learner import token_logprobs

    device, cuda = c.args.device, c.cuda
    eps = varied_episodes(c.args.episodes, c.args.seq, c.config["vocab_size"])
    attention = packing.attention(device, autocast=cuda)
    padded_model, packed_model = (AutoModelForCausalLM.from_pretrained(c.model_dir, dtype=torch.float32,
                                                                       attn_implementation=impl).to(device).eval()
                                  for impl in (None, attention))
    padded, packed = pack(eps, 0).to(device), pack(eps, 0, packed=True).to(device)
    mask = padded.response_mask.bool()

    def logprobs(model, batch, autocast: bool) -> tuple[torch.Tensor, float]:
        ctx = torch.autocast(device, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad(), ctx:
            logp = token_logprobs(model, batch, 1.0)[0][mask]
        if cuda:
            torch.cuda.synchronize()
        return logp.float(), time.perf_counter() - t0

    logprobs(packed_model, packed, cuda)  # warm-up: kernels, allocator
    ref, padded_s = logprobs(padded_model, padded, cuda)
    got, packed_s = logprobs(packed_model, packed, cuda)
    gap = (got - ref).abs()
    assert torch.isfinite(got).all(), "non-finite packed log-probs"
    tokens = f"{int(mask.sum())} response tokens, {sum(packing.tokens(eps))} in the row"
    if not cuda:
        assert gap.max().item() <= CPU_TOL, f"packed log-probs differ from padded by {gap.max().item():.3g} (fp32)"
        return f"{attention}, fp32: max |diff| {gap.max().item():.1g} <= {CPU_TOL:g}; {tokens}"
    fp32, _ = logprobs(padded_model, padded, False)
    noise = (ref - fp32).abs().mean().item()
    limit = BF16_FACTOR * noise + BF16_SLACK
    assert gap.mean().item() <= limit, (f"packed log-probs differ from padded by {gap.mean().item():.3g} per token "
                                        f"(bf16's own error {noise:.3g}: limit {limit:.3g})")
    return (f"{attention}, bf16: mean |diff| {gap.mean().item():.2g} (max {gap.max().item():.2g}) <= {limit:.2g} "
            f"(2x bf16's own {noise:.2g} + {BF16_SLACK:g}); forward {padded_s:.3f} s padded, {packed_s:.3f} s "
            f"packed; {tokens}")
