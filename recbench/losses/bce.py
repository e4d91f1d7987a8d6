"""Binary cross-entropy with sampled negatives: the loss of the original SASRec paper
(Kang & McAuley, ICDM 2018), one uniformly drawn negative per positive.

Negatives are drawn uniformly over all items and redrawn where they hit the positive; unlike the paper
they may be other items of the same user's history (rare on sparse data, and it keeps the loss O(N)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SampledBCE(nn.Module):
    def __init__(self, num_negatives: int = 1) -> None:
        super().__init__()
        if num_negatives < 1:
            raise ValueError(f"loss.num_negatives must be >= 1, got {num_negatives}")
        self.num_negatives = num_negatives

    def forward(self, query: torch.Tensor, targets: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """query (N, D), targets (N,) 0-based item indices, item_emb (I, D) -> mean loss."""
        n, num_items = targets.shape[0], item_emb.shape[0]
        neg = torch.randint(num_items, (n, self.num_negatives), device=targets.device)
        # Shifting a colliding draw by a random non-zero offset keeps it uniform over the other items.
        clash = neg == targets[:, None]
        offset = torch.randint(1, num_items, neg.shape, device=targets.device)
        neg = torch.where(clash, (neg + offset) % num_items, neg)
        pos_logit = (query * item_emb[targets]).sum(-1)  # (N,)
        neg_logit = torch.einsum("nd,nkd->nk", query, item_emb[neg])  # (N, K)
        pos_loss = F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
        neg_loss = F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))
        return pos_loss + neg_loss
