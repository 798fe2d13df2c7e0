"""PPO's critic: a scalar value head on its own copy of the policy backbone."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel


class ValueModel(nn.Module):
    def __init__(self, model_path: str, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.backbone = AutoModel.from_pretrained(model_path, dtype=dtype)
        self.head = nn.Linear(self.backbone.config.hidden_size, 1, dtype=dtype)
        # Start near V = 0 so early advantages are the raw returns, not noise from a random head.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Values [B, L-1]: position i is V(state after token i), aligned with next-token log-probs."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden[:, :-1]).squeeze(-1).float()

    def save(self, path: Path) -> None:
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))

    def load(self, path: Path) -> None:
        self.load_state_dict(load_file(str(path)))
