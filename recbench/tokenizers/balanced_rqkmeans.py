"""Balanced residual k-means semantic IDs: residual k-means whose every level assigns at most
``ceil(n / k)`` items to a code (a size-constrained assignment, as MiniOneRec's constrained RQ-KMeans), so
no code swallows a crowd and the codebook is used evenly (utilization and perplexity near their maximum).

Each level starts from faiss k-means centroids, then alternates ``balance_iter`` times: assign greedily
under the size bound (every (item, code) pair in order of distance; an item takes the nearest code that
still has room), and move each centroid to the mean of its items. The residual of an item is its vector
minus its code's centroid, as in plain residual k-means."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recbench.tokenizers.rqkmeans import kmeans
from recbench.tokenizers.semantic import SemanticIdTokenizer


def balanced_assign(x: np.ndarray, centroids: np.ndarray, capacity: int) -> np.ndarray:
    """(n,) code per row of ``x``: pairs taken nearest first, each code holding at most ``capacity``."""
    n, k = len(x), len(centroids)
    if capacity * k < n:
        raise ValueError(f"capacity {capacity} x {k} codes cannot hold {n} items")
    d = (x**2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids**2).sum(1)[None]  # (n, k) squared distances
    order = np.argsort(d, axis=None, kind="stable")
    assign = np.full(n, -1, dtype=np.int64)
    room = np.full(k, capacity, dtype=np.int64)
    left = n
    for flat in order:  # early exit once every item has its code
        i, c = divmod(int(flat), k)
        if assign[i] < 0 and room[c] > 0:
            assign[i], room[c] = c, room[c] - 1
            left -= 1
            if not left:
                break
    return assign


class BalancedRQKMeansTokenizer(SemanticIdTokenizer):
    """Args (besides :class:`SemanticIdTokenizer`'s): ``niter``/``nredo`` of the initial k-means,
    ``balance_iter`` assignment/update rounds under the size bound ``ceil(items / codebook_size)``."""

    name = "balanced_rqkmeans"

    def __init__(self, niter: int = 50, nredo: int = 3, balance_iter: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if balance_iter < 1:
            raise ValueError(f"tokenizer.balance_iter must be >= 1, got {balance_iter}")
        self.niter, self.nredo, self.balance_iter = niter, nredo, balance_iter

    def params(self) -> dict[str, Any]:
        return {"niter": self.niter, "nredo": self.nredo, "balance_iter": self.balance_iter}

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        residual = embeddings.astype(np.float32).copy()
        codes = np.zeros((len(embeddings), self.num_levels), dtype=np.int64)
        capacity = math.ceil(len(embeddings) / codebook_size)
        for level in range(self.num_levels):
            centroids, _ = kmeans(residual, codebook_size, self.niter, self.seed + level, self.nredo)
            for _ in range(self.balance_iter):
                assign = balanced_assign(residual, centroids, capacity)
                sums = np.zeros_like(centroids)
                np.add.at(sums, assign, residual)
                counts = np.bincount(assign, minlength=codebook_size)[:, None]
                centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids).astype(np.float32)
            codes[:, level] = assign
            residual -= centroids[assign]
        return codes
