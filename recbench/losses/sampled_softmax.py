"""Sampled softmax: cross-entropy over the positive and K sampled negatives instead of every item
(Jean et al., ACL 2015; Covington et al., RecSys 2016 for recommendation). The loss of the
generative-recommenders (HSTU) baselines: 128 uniform negatives over L2-normalised vectors.

``negatives``:
* ``uniform``: K items drawn uniformly, shared by the whole batch (one (N, K) matrix product, as
  TensorFlow's ``sampled_softmax_loss``);
* ``uniform_per_query``: K items drawn uniformly for each query, as generative-recommenders' local
  negatives sampler (its HSTU and SASRec rows): N x K draws per step instead of K (scored through the
  full (N, I) score matrix where that is cheaper than gathering (N, K, D) embeddings);
* ``in_batch``: the other targets of the batch, so popular items are sampled as often as they are targets.

A negative equal to the row's positive (an "accidental hit") is removed. ``logq_correction`` subtracts the
log of each candidate's sampling probability from its logit (Yi et al., RecSys 2019), which makes in-batch
sampling an unbiased estimate of the full softmax; it is estimated from the batch's own targets (the
distribution its negatives are drawn from). Under uniform sampling every candidate has the same
probability, so the correction would change nothing: it is refused there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NEGATIVES = ("uniform", "uniform_per_query", "in_batch")


class SampledSoftmax(nn.Module):
    def __init__(self, num_negatives: int = 128, negatives: str = "uniform", logq_correction: bool = False):
        super().__init__()
        if negatives not in NEGATIVES:
            raise ValueError(f"loss.negatives must be one of {NEGATIVES}, got {negatives!r}")
        if negatives != "in_batch" and num_negatives < 1:
            raise ValueError(f"loss.num_negatives must be >= 1, got {num_negatives}")
        if negatives != "in_batch" and logq_correction:
            raise ValueError("loss.logq_correction changes nothing under uniform negatives: use in_batch")
        self.num_negatives, self.negatives, self.logq_correction = num_negatives, negatives, logq_correction

    def sample(self, targets: torch.Tensor, num_items: int) -> torch.Tensor:
        """(K,) negative item indices for the batch."""
        if self.negatives == "in_batch":
            return targets
        return torch.randint(num_items, (self.num_negatives,), device=targets.device)

    def forward(self, query: torch.Tensor, targets: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """query (N, D), targets (N,) 0-based item indices, item_emb (I, D) -> mean loss."""
        pos = (query * item_emb[targets]).sum(-1, keepdim=True)  # (N, 1)
        if self.negatives == "uniform_per_query":
            drawn = torch.randint(
                item_emb.shape[0], (len(targets), self.num_negatives), device=targets.device
            )
            if item_emb.shape[0] <= drawn.shape[1] * item_emb.shape[1]:  # scoring every item is cheaper
                neg = (query @ item_emb.T).gather(1, drawn)  # than the (N, K, D) gather (ML-1M: 4x)
            else:
                neg = torch.einsum("nd,nkd->nk", query, item_emb[drawn])  # (N, K)
            hits = drawn == targets[:, None]
        else:
            negatives = self.sample(targets, item_emb.shape[0])  # (K,)
            neg = query @ item_emb[negatives].T  # (N, K)
            if self.logq_correction:
                ids, counts = targets.unique(return_counts=True)
                log_q = torch.zeros(item_emb.shape[0], device=query.device, dtype=query.dtype)
                log_q[ids] = (counts.to(query.dtype) / len(targets)).log()
                pos, neg = pos - log_q[targets, None], neg - log_q[negatives][None]
            hits = negatives[None] == targets[:, None]
        logits = torch.cat([pos, neg.masked_fill(hits, float("-inf"))], dim=1)  # accidental hits removed
        return F.cross_entropy(logits, torch.zeros_like(targets))  # the positive is class 0
