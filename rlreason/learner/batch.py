"""Pack episodes into right-padded tensors aligned with next-token log-probs.

Position i of every [B, L-1] tensor refers to predicting token i+1 of prompt+response, so the response
token j of an episode with prompt length P sits at position P - 1 + j.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rlreason.rollout import Episode

if TYPE_CHECKING:
    from rlreason.learner.packing import Packed


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    response_mask: torch.Tensor  # [B, L-1] 1 where the target is a response token the policy sampled
    advantages: torch.Tensor  # [B, L-1]
    returns: torch.Tensor  # [B, L-1] (ppo only; zeros otherwise)
    # The same episodes as one padding-free row, which the models then run on instead of input_ids
    # (learner.max_tokens_per_micro_batch; rlreason/learner/packing.py); None: the padded rows above.
    packed: Packed | None = None

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.response_mask,
                                              self.advantages, self.returns)),
                     packed=self.packed.to(device) if self.packed is not None else None)


def pack(episodes: list[Episode], pad_id: int, packed: bool = False) -> Batch:
    """The episodes right-padded; `packed`: also as one padding-free row (rlreason/learner/packing.py)."""
    seqs = [ep.prompt_ids + ep.response_ids for ep in episodes]
    length = max(len(s) for s in seqs)
    b = len(episodes)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    attention = torch.zeros((b, length), dtype=torch.long)
    mask = torch.zeros((b, length - 1))
    adv = torch.zeros((b, length - 1))
    ret = torch.zeros((b, length - 1))
    for i, (ep, seq) in enumerate(zip(episodes, seqs)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        p, r = len(ep.prompt_ids), len(ep.response_ids)
        # env.cls: observation tokens between turns are context, not actions: out of every masked term
        mask[i, p - 1 : p - 1 + r] = 1 if ep.action_mask is None else torch.tensor(ep.action_mask, dtype=mask.dtype)
        if ep.advantages:
            adv[i, p - 1 : p - 1 + r] = torch.tensor(ep.advantages)
        if ep.returns:
            ret[i, p - 1 : p - 1 + r] = torch.tensor(ep.returns)
    if packed:
        from rlreason.learner.packing import pack_row

        return Batch(input_ids, attention, mask, adv, ret, pack_row(episodes))
    return Batch(input_ids, attention, mask, adv, ret)


def unpack(values: torch.Tensor, episodes: list[Episode]) -> list[list[float]]:
    """Per-episode lists of a [B, L-1] tensor's entries at the response positions."""
    out = []
    for i, ep in enumerate(episodes):
        p, r = len(ep.prompt_ids), len(ep.response_ids)
        out.append(values[i, p - 1 : p - 1 + r].tolist())
    return out
