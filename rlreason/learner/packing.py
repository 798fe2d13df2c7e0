"""learner.max_tokens_per_micro_batch: token-budget micro-batches, each packed into one padding-free row.

- Micro-batches are filled by tokens, not by episodes (verl's dynamic batch size, `ppo_max_token_len_per_gpu`):
  first-fit decreasing puts each episode (prompt + response) into the first micro-batch it fits, so every
  micro-batch holds at most the budget's tokens. An episode longer than the budget is never split (its tokens
  attend to each other): it runs alone, so the bound is max(budget, the longest episode); a budget below
  rollout.max_new_tokens is refused before compute (`problems`).
- A micro-batch's episodes are concatenated into one row whose `position_ids` restart at 0 for each episode
  (transformers' padding-free format, DataCollatorWithFlattening's), with the episodes' cumulative lengths
  (`cu_seq_lens_*`) passed as the flash-attention kwargs: no token attends across episodes and no padding is
  computed. Only the positions that predict a response token go through the LM head (`logits_to_keep`).
- Attention: flash-attention's varlen kernel where it is installed and the learner runs in bf16 autocast
  (`flash_attention_2`, GPUs); elsewhere `sdpa_varlen`, registered here: torch's SDPA run causally on each
  episode's span of the row. A block-diagonal mask over the whole row would give the same numbers at
  O(row^2) cost (measured 2-4x slower than padding at 1-4k tokens on the CPU); per-span SDPA costs what
  the episodes' own attention does.
- Outputs (log-probs, entropies, values) are scattered back into the padded [B, L-1] layout of
  rlreason/learner/batch.py, so the losses, their normalisers (whole-minibatch token and sequence counts:
  rlreason/algo/losses.py) and everything downstream are the padded path's, whatever the micro-batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from rlreason.distributed import Dist
from rlreason.distributed.fsdp import local_share
from rlreason.rollout import Episode

VARLEN = "sdpa_varlen"


def sdpa_varlen(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                **kwargs) -> tuple[torch.Tensor, None]:
    """Causal SDPA on each span [cu[i], cu[i+1]) of a packed row ([1, heads, T, dim] in, [1, T, heads, dim]
    out, as transformers' sdpa_attention_forward). Without `cu_seq_lens_q` (a padded batch) it is stock SDPA."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    bounds = cu.tolist()
    spans = [sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None,
                                    dropout=dropout, scaling=scaling, is_causal=True)[0]
             for a, b in zip(bounds, bounds[1:])]
    return torch.cat(spans, dim=1), None


def _varlen_mask(*args, attention_mask=None, **kwargs):
    """SDPA's mask for a padded batch; none for a packed row (its spans are `sdpa_varlen`'s), so the
    row^2 block-diagonal mask transformers would build from the position ids is never made."""
    return None if attention_mask is None else sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


AttentionInterface.register(VARLEN, sdpa_varlen)
AttentionMaskInterface.register(VARLEN, _varlen_mask)


def attention(device: str, autocast: bool) -> str:
    """The packed path's attention: flash-attention's varlen kernel when installed and the learner runs in
    bf16 autocast on a GPU (flash-attention takes no fp32), else per-span SDPA."""
    from transformers.utils import is_flash_attn_2_available

    return "flash_attention_2" if device != "cpu" and autocast and is_flash_attn_2_available() else VARLEN


def problems(learner: Any, max_new_tokens: int) -> list[str]:
    """learner.max_tokens_per_micro_batch values that cannot work, before any compute."""
    budget = learner.max_tokens_per_micro_batch
    if budget is None:
        return []
    if budget < max_new_tokens:
        return [f"learner.max_tokens_per_micro_batch={budget} cannot hold one full response "
                f"(rollout.max_new_tokens={max_new_tokens}): raise it to at least the longest prompt + response "
                "(model.max_model_len), or null for micro-batches of learner.micro_batch_size episodes"]
    return []


# ----------------------------------------------------------------------------- token-budget micro-batches
def token_bins(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices of `lengths` in bins of at most `budget` tokens (one over-long item alone), first-fit
    decreasing (longest first; ties by index, so the bins are a function of the lengths alone). Each bin
    lists its indices in ascending order; bins come longest first."""
    bins: list[list[int]] = []
    loads: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for b, load in enumerate(loads):
            if load + lengths[i] <= budget:
                bins[b].append(i)
                loads[b] += lengths[i]
                break
        else:
            bins.append([i])
            loads.append(lengths[i])
    return [sorted(b) for b in bins]


def micro_batches(items: list, lengths: Sequence[int], budget: int, dist: Dist) -> list[tuple[list, bool]]:
    """As rlreason.distributed.fsdp.micro_batches, by tokens: this rank's share of `items` (lengths[i] is
    items[i]'s) in bins of `budget` tokens, padded with (items[:1], False) passes to the count of the rank
    with the most bins. Every rank bins every rank's share (contiguous, known to all): no collective."""

    def binned(rank: int) -> list[list]:
        share = local_share(list(range(len(items))), Dist(rank=rank, world=dist.world))
        return [[items[share[j]] for j in b] for b in token_bins([lengths[i] for i in share], budget)]

    chunks = [(b, True) for b in binned(dist.rank)]
    most = max(len(binned(r)) for r in range(dist.world)) if dist.active else len(chunks)
    return chunks + [(items[:1], False)] * (most - len(chunks))


# ----------------------------------------------------------------------------- the packed row
@dataclass
class Packed:
    """A micro-batch as one padding-free row, and where its outputs go in the padded [B, L-1] layout."""

    input_ids: torch.Tensor  # [1, T] the episodes' prompt + response tokens, back to back
    position_ids: torch.Tensor  # [1, T] restarting at 0 for each episode
    cu_seq_lens: torch.Tensor  # [B + 1] int32, the episodes' bounds in the row (flash-attention's cu_seqlens)
    keep: torch.Tensor  # [N] row positions whose next token is a response token (the only logits computed)
    targets: torch.Tensor  # [N] those next tokens
    rows: torch.Tensor  # [N] each kept position's episode ...
    cols: torch.Tensor  # [N] ... and its column in the padded [B, L-1] layout
    max_length: int  # the longest episode (flash-attention's max_seqlen)

    def to(self, device: torch.device | str) -> Packed:
        return Packed(*(getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), torch.Tensor)
                        else getattr(self, f.name) for f in fields(self)))

    def kwargs(self) -> dict[str, Any]:
        """The model call's inputs: no attention mask, so transformers reads the packing from these."""
        return {"input_ids": self.input_ids, "position_ids": self.position_ids, "cu_seq_lens_q": self.cu_seq_lens,
                "cu_seq_lens_k": self.cu_seq_lens, "max_length_q": self.max_length, "max_length_k": self.max_length}

    def padded(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """[N] kept-position values into a zero [B, L-1] tensor shaped `like` (differentiable)."""
        out = values.new_zeros(like.shape)
        out[self.rows, self.cols] = values
        return out


def pack_row(episodes: list[Episode]) -> Packed:
    seqs = [ep.prompt_ids + ep.response_ids for ep in episodes]
    lengths = [len(s) for s in seqs]
    starts = [0, *torch.tensor(lengths).cumsum(0).tolist()]
    keep, rows, cols = [], [], []
    for i, (ep, start) in enumerate(zip(episodes, starts)):
        p, r = len(ep.prompt_ids), len(ep.response_ids)
        keep += range(start + p - 1, start + p - 1 + r)
        rows += [i] * r
        cols += range(p - 1, p - 1 + r)
    ids = torch.tensor([t for s in seqs for t in s])
    keep_t = torch.tensor(keep, dtype=torch.long)
    return Packed(ids[None], torch.cat([torch.arange(n) for n in lengths])[None],
                  torch.tensor(starts, dtype=torch.int32), keep_t, ids[keep_t + 1], torch.tensor(rows, dtype=torch.long),
                  torch.tensor(cols, dtype=torch.long), max(lengths))


def tokens(episodes: list[Episode]) -> list[int]:
    """Each episode's length in the row: prompt + response tokens."""
    return [len(ep.prompt_ids) + len(ep.response_ids) for ep in episodes]
