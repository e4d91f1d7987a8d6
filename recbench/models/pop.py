"""Pop: every user is shown the items in order of how often they occur in the training interactions.

The floor of every table: a trained model that does not beat it has learned nothing personal. Nothing is
trained (``zero_shot``: the row reports 0 epochs). Counts are over the training interactions only (the items
before each user's validation target), the data every trained model learns from. Items with equal counts
tie, and ties count against the target, so Pop is never credited by an arbitrary order among them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Pop(nn.Module):
    """Args:
    num_items: number of items.
    train_item_counts: (num_items,) occurrences of each item in the training interactions.
    max_len: history the datamodule passes (Pop reads none; history masking uses it).
    """

    def __init__(self, num_items: int, train_item_counts: np.ndarray, max_len: int = 50) -> None:
        super().__init__()
        counts = torch.as_tensor(np.asarray(train_item_counts), dtype=torch.float64)
        if counts.shape != (num_items,):
            raise ValueError(f"train_item_counts has shape {tuple(counts.shape)}, expected ({num_items},)")
        self.max_len = max_len
        self.counts: torch.Tensor
        self.register_buffer("counts", counts.float()[:, None])  # (I, 1): a buffer, not a parameter

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) -> (B, L, 1) ones: the same "user" everywhere."""
        return torch.ones(*tokens.shape, 1, device=tokens.device)

    def item_embeddings(self) -> torch.Tensor:
        return self.counts

    def score_items(self, user: torch.Tensor) -> torch.Tensor:
        """(B, 1) -> (B, I): every item's training count."""
        return user @ self.counts.T
