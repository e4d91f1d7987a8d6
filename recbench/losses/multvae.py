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
        row_index: torch.Tensor,
        item_index: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        beta: float,
    ) -> torch.Tensor:
        """logits (B, I); the users' items as (``row_index``, ``item_index``) pairs, where the
        log-likelihood is gathered (no (B, I) product with the binary rows); mu, logvar (B, Z); beta >= 0."""
        nll = -F.log_softmax(logits, dim=1)[row_index, item_index].sum() / len(logits)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
        return nll + beta * kl
