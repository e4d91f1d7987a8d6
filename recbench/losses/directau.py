"""DirectAU's loss (Wang et al., KDD 2022) over a batch of observed (user, item) pairs, on L2-normalised
embeddings:

    align   = mean ||u − i||²
    uniform(x) = log mean_{a<b} exp(−2 ||x_a − x_b||²)     (over distinct pairs of the batch's rows)
    loss    = align + γ (uniform(users) + uniform(items)) / 2
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def alignment(u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    return (F.normalize(u, dim=-1) - F.normalize(i, dim=-1)).pow(2).sum(-1).mean()


def uniformity(x: torch.Tensor) -> torch.Tensor:
    x = F.normalize(x, dim=-1)
    return torch.pdist(x, p=2).pow(2).mul(-2).exp().mean().log()


class AlignUniform(nn.Module):
    def __init__(self, gamma: float = 1.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"loss.gamma must be >= 0, got {gamma}")
        self.gamma = gamma

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """users, items (B, D): the embeddings of the batch's observed pairs."""
        return alignment(users, items) + self.gamma * (uniformity(users) + uniformity(items)) / 2
