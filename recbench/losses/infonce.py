"""InfoNCE over sampled negatives for CF models (AlphaRec): ``-log softmax`` of the positive among the
positive and its negatives, every score divided by a temperature,

    loss = -log( exp(pos/τ) / (exp(pos/τ) + sum_k exp(neg_k/τ)) ),

averaged over the batch's pairs. Scores are cosines in AlphaRec (Sheng et al., ICLR 2025)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InfoNCE(nn.Module):
    def __init__(self, temperature: float = 0.15) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """pos (B,) positive scores, neg (B, K) negative scores -> mean loss."""
        logits = torch.cat([pos[:, None], neg], dim=1) / self.temperature  # (B, 1 + K)
        return -F.log_softmax(logits, dim=1)[:, 0].mean()
