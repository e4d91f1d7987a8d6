"""Bayesian personalised ranking (Rendle et al., UAI 2009): the positive should outscore each negative,
``-log sigmoid(pos - neg)`` averaged over (pair, negative), plus an optional L2 penalty on the embeddings
the batch used, ``reg_weight * sum ||v||^2 / (2 B)`` (LightGCN's form: He et al., SIGIR 2020, with
``reg_weight`` 1e-4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BPRLoss(nn.Module):
    def __init__(self, reg_weight: float = 0.0) -> None:
        super().__init__()
        if reg_weight < 0:
            raise ValueError(f"loss.reg_weight must be >= 0, got {reg_weight}")
        self.reg_weight = reg_weight

    def forward(self, pos: torch.Tensor, neg: torch.Tensor, reg: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """pos (B,) positive scores, neg (B, K) negative scores, reg: embeddings to penalise."""
        loss = -F.logsigmoid(pos[:, None] - neg).mean()
        if self.reg_weight and reg:
            loss = loss + self.reg_weight * sum(v.pow(2).sum() for v in reg) / (2 * len(pos))
        return loss
