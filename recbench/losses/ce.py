"""Full-softmax cross-entropy over every item (the loss that makes SASRec strong; see
Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FullSoftmaxCE(nn.Module):
    def forward(self, query: torch.Tensor, targets: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """query (N, D), targets (N,) 0-based item indices, item_emb (I, D) -> mean loss."""
        logits = query @ item_emb.T  # (N, I)
        return F.cross_entropy(logits, targets)
