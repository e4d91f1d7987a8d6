"""BPR plus a contrastive (InfoNCE) term between two views of the same nodes (SimGCL, Yu et al., SIGIR
2022): for normalised views a, b of n nodes, ``−mean_k log softmax_j(a_k·b_j / τ)[k]``, summed over the
view pairs (users, items) and weighted by ``cl_weight``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from recbench.losses.bpr import BPRLoss


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


class BPRContrastive(BPRLoss):
    def __init__(self, reg_weight: float = 1e-4, cl_weight: float = 0.5, temperature: float = 0.2) -> None:
        super().__init__(reg_weight)
        if cl_weight < 0 or not temperature > 0:
            raise ValueError(
                f"loss.cl_weight must be >= 0 and temperature > 0, got {cl_weight}, {temperature}"
            )
        self.cl_weight, self.temperature = cl_weight, temperature

    def forward(
        self,
        pos: torch.Tensor,
        neg: torch.Tensor,
        reg: Sequence[torch.Tensor] = (),
        views: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ) -> torch.Tensor:
        cl = sum(info_nce(a, b, self.temperature) for a, b in views)
        return super().forward(pos, neg, reg) + self.cl_weight * cl
