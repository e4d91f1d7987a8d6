"""Mult-VAE's objective (Liang et al., WWW 2018): the negative multinomial log-likelihood of a user's items
under the decoder's softmax, plus β times the KL divergence of the encoder's Gaussian from N(0, I), both
summed per user and averaged over the batch (β from the model's annealing schedule)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultVAELoss(nn.Module):
    def forward(
        self,
        logits: torch.Tensor,
        rows: torch.Tensor | None,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        beta: float,
        row_index: torch.Tensor | None = None,
        item_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """logits (B, I); the users' items as dense binary ``rows`` (B, I) or as (``row_index``,
        ``item_index``) pairs (the log-likelihood gathered at them, no (B, I) product); mu, logvar (B, Z);
        beta >= 0."""
        log_p = F.log_softmax(logits, dim=1)
        if rows is not None:
            nll = -(log_p * rows).sum(1).mean()
        elif row_index is not None and item_index is not None:
            nll = -log_p[row_index, item_index].sum() / len(logits)
        else:
            raise ValueError("MultVAELoss needs rows or (row_index, item_index)")
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
        return nll + beta * kl
