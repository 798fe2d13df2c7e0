"""PPO's critic: a scalar value head on its own copy of the policy backbone."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel


class ValueModel(nn.Module):
    def __init__(self, model_path: str, dtype: torch.dtype = torch.float32, seed: int = 0,
                 attn_implementation: str | None = None):
        super().__init__()
        self.backbone = AutoModel.from_pretrained(model_path, dtype=dtype, attn_implementation=attn_implementation)
        hidden = self.backbone.config.hidden_size
        self.head = nn.Linear(hidden, 1, dtype=dtype)
        # As the reference (treetune/models/pretrained_with_value_head.py,
        # PreTrainedModelForValueNetwork._init_value_head): weight ~ N(0, 1/(hidden + 1)), bias 0. Its own
        # generator, so a fresh run's critic does not depend on what drew from the global RNG before.
        with torch.no_grad():
            self.head.weight.normal_(0.0, 1 / math.sqrt(hidden + 1), generator=torch.Generator().manual_seed(seed))
            self.head.bias.zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                keep: torch.Tensor | None = None, **packed) -> torch.Tensor:
        """Values [B, L-1]: position i is V(state after token i), aligned with next-token log-probs. A packed
        row (rlreason/learner/packing.py: `packed` its kwargs, `keep` its response positions): values [1, N]
        at the `keep` positions only."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                               **packed).last_hidden_state
        return self.head(hidden[:, :-1] if keep is None else hidden[:, keep]).squeeze(-1).float()

    def save(self, path: Path) -> None:
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))

    def load(self, path: Path) -> None:
        self.load_state_dict(load_file(str(path)))
