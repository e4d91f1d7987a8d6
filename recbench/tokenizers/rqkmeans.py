"""Residual k-means semantic IDs: level l clusters the residuals left by levels 0..l-1 (the training-free
counterpart of RQ-VAE; e.g. the RQ-KMeans tokenizer of OneRec, Deng et al. 2025). faiss k-means."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from recbench.tokenizers.semantic import SemanticIdTokenizer


def kmeans(x: np.ndarray, k: int, niter: int, seed: int, nredo: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (k, d), assignment (n,)) by faiss k-means, best of ``nredo`` restarts (one start
    often lands in a poor local optimum that merges two clusters); deterministic for a given seed."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    # faiss subsamples to 256 points per centroid by default; keep every point (item sets are small).
    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, nredo=nredo, seed=seed, max_points_per_centroid=max(256, len(x))
    )
    km.cp.min_points_per_centroid = 1  # silence the "too few points" warning on tiny sets
    km.train(x)
    _, assign = km.index.search(x, 1)
    return np.asarray(km.centroids, dtype=np.float32), assign[:, 0].astype(np.int64)


class RQKMeansTokenizer(SemanticIdTokenizer):
    """Args (besides :class:`SemanticIdTokenizer`'s): ``niter`` k-means iterations per level, ``nredo``
    restarts (the best objective is kept)."""

    name = "rqkmeans"

    def __init__(self, niter: int = 50, nredo: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.niter, self.nredo = niter, nredo

    def params(self) -> dict[str, Any]:
        return {"niter": self.niter, "nredo": self.nredo}

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        residual = embeddings.astype(np.float32).copy()
        codes = np.zeros((len(embeddings), self.num_levels), dtype=np.int64)
        for level in range(self.num_levels):
            centroids, assign = kmeans(residual, codebook_size, self.niter, self.seed + level, self.nredo)
            codes[:, level] = assign
            residual -= centroids[assign]
        return codes
