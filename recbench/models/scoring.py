"""How a sequence model's hidden state is compared with item embeddings, shared by SASRec and HSTU:
``dot`` (the SASRec paper's) or ``cosine`` (both L2-normalised) with scores divided by a ``temperature``,
as the generative-recommenders (HSTU) baselines score (cosine over 0.05). Scores are logits: the loss and
the ranking read them as given."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Similarity:
    def __init__(self, similarity: str = "dot", temperature: float = 1.0, eps: float = 1e-12) -> None:
        if similarity not in ("dot", "cosine"):
            raise ValueError(f"model.net.similarity must be 'dot' or 'cosine', got {similarity!r}")
        if not temperature > 0:
            raise ValueError(f"model.net.temperature must be > 0, got {temperature!r}")
        self.similarity, self.temperature, self.eps = similarity, float(temperature), eps

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states (…, D) as they are scored: unit length under cosine, over the temperature."""
        if self.similarity == "cosine":
            x = F.normalize(x, dim=-1, eps=self.eps)
        return x / self.temperature if self.temperature != 1.0 else x

    def items(self, weight: torch.Tensor) -> torch.Tensor:
        """Item embeddings (I, D) as they are scored: unit length under cosine."""
        return F.normalize(weight, dim=-1, eps=self.eps) if self.similarity == "cosine" else weight


def positions_from_start(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) position of each token of a left-padded batch counted from the oldest real item (0);
    left padding is clamped to 0 (its outputs are never read)."""
    length = valid.shape[1]
    steps = torch.arange(length, device=valid.device)
    return (steps[None] - (length - valid.sum(1, keepdim=True))).clamp(min=0)
