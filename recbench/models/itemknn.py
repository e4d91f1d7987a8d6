"""ItemKNN: item-item cosine similarity on the training matrix, each item's top-k neighbours kept; a user's
score for item j is the sum of j's similarity to the items in the user's history (Sarwar et al., WWW
2001; RecBole's ItemKNN: k = 100, shrink 0).

``sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i| |U_j|) + shrink)`` over the users who have each item in
training. No gradient training: fitted when constructed (``fit_seconds``). At evaluation the user is
folded in from the whole history before the target (``test_history: train+valid``); repeats count once.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.lit.cf import history_pairs


def item_neighbours(
    matrix: sp.csr_matrix, k: int, shrink: float = 0.0, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(I, k) neighbour indices and (I, k) float32 cosine similarities, most similar first; an item's own
    similarity is excluded, and a neighbour that shares no user has similarity 0."""
    x = sp.csc_matrix(matrix, dtype=np.float32)
    num_items = x.shape[1]
    k = min(k, num_items - 1)
    norms = np.sqrt(np.asarray(x.power(2).sum(0)).ravel())
    xt = x.T.tocsr()
    neighbours = np.zeros((num_items, k), dtype=np.int64)
    weights = np.zeros((num_items, k), dtype=np.float32)
    for s in range(0, num_items, chunk):
        rows = np.arange(s, min(s + chunk, num_items))
        co = torch.from_numpy((xt[rows] @ x).toarray())  # (c, I) co-occurrence counts
        denom = torch.from_numpy(np.outer(norms[rows], norms) + shrink).float()
        sim = torch.where(denom > 0, co / denom.clamp_min(1e-12), torch.zeros(()))
        sim[torch.arange(len(rows)), torch.from_numpy(rows)] = -1.0  # never its own neighbour
        w, nb = sim.topk(k, dim=1)
        neighbours[rows], weights[rows] = nb.numpy(), w.clamp_min(0).numpy()
    return neighbours, weights


class ItemKNN(nn.Module):
    """Args:
    num_items: number of items.
    train_matrix: (U, I) binary CSR of the training interactions.
    k: neighbours kept per item.
    shrink: added to the cosine's denominator (damps similarities of rare items).
    """

    test_history = "train+valid"
    max_history = 0  # the whole history before the target

    def __init__(
        self, num_items: int, train_matrix: sp.csr_matrix, k: int = 100, shrink: float = 0.0
    ) -> None:
        super().__init__()
        if train_matrix.shape[1] != num_items:
            raise ValueError(f"train_matrix has {train_matrix.shape[1]} items, expected {num_items}")
        if k < 1 or shrink < 0:
            raise ValueError(f"model.net.k must be >= 1 and shrink >= 0, got k={k}, shrink={shrink}")
        started = time.perf_counter()
        nb, w = item_neighbours(train_matrix, k, shrink)
        self.fit_seconds = time.perf_counter() - started
        self.neighbours: torch.Tensor
        self.weights: torch.Tensor
        self.register_buffer("neighbours", torch.from_numpy(nb))
        self.register_buffer("weights", torch.from_numpy(w))
        self.num_items = num_items

    def score(self, batch: EvalBatch) -> torch.Tensor:
        rows, items = history_pairs(batch)
        scores = torch.zeros(len(batch.users), self.num_items, device=self.weights.device)
        nb = self.neighbours[items]  # (H, k)
        scores.index_put_((rows[:, None].expand_as(nb), nb), self.weights[items], accumulate=True)
        return scores
