"""BUIR's bootstrap loss (Lee et al., SIGIR 2021): each online prediction should point where its target
representation points, ``2 − 2 cos(p, t)`` (the squared distance of the unit vectors), averaged over the
batch and summed over the (user → item, item → user) pairs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BootstrapLoss(nn.Module):
    def forward(self, online: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
        """online, target: matching lists of (B, D) predictions and (B, D) targets (no gradient)."""
        return sum(
            (2 - 2 * F.cosine_similarity(p, t.detach(), dim=-1)).mean()
            for p, t in zip(online, target, strict=True)
        )  # type: ignore[return-value]
