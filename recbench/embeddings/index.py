"""Vector search through faiss (Johnson, Douze & Jégou, "Billion-scale similarity search with GPUs",
IEEE TBD 2019), and PCA compression of embeddings fitted on the corpus.

Inner product on L2-normalised vectors, i.e. cosine similarity. Index kinds:

* ``flat`` — exact search (``IndexFlatIP``): the default, and the reference the others are measured
  against.
* ``hnsw`` — graph search (Malkov & Yashunin, TPAMI 2018), ``IndexHNSWFlat`` with M / efConstruction /
  efSearch.
* ``ivfpq`` — inverted lists + product quantisation (Jégou et al., TPAMI 2011), ``IndexIVFPQ`` with
  nlist / m / nbits / nprobe.

Approximate kinds report their recall@k against exact search on the same queries
(:func:`recall_vs_exact`); rows carry that number so an approximate result is never mistaken for an
exact one. ``faiss-cpu`` by default; with ``faiss-gpu-cu12`` (the ``[gpu]`` extra) and ``device=cuda``
the flat index runs on the GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("flat", "hnsw", "ivfpq")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class PCA:
    """PCA to ``dim`` dimensions fitted on the corpus vectors (faiss ``PCAMatrix``, centred), followed
    by L2 normalisation so inner products stay cosines."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"pca_dim must be >= 1, got {dim}")
        self.dim, self.seed = dim, seed
        self._pca: Any = None

    def fit(self, corpus: np.ndarray) -> PCA:
        import faiss

        n, d = corpus.shape
        if self.dim > min(n, d):
            raise ValueError(f"pca_dim {self.dim} exceeds min(corpus size {n}, embedding width {d})")
        self._pca = faiss.PCAMatrix(d, self.dim)
        self._pca.train(np.ascontiguousarray(corpus, dtype=np.float32))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self._pca is None:
            raise RuntimeError("PCA.transform before fit")
        return l2_normalize(self._pca.apply(np.ascontiguousarray(x, dtype=np.float32)))

    def explained_variance(self) -> float:
        """Share of the corpus variance kept by the ``dim`` components."""
        import faiss

        eig = faiss.vector_to_array(self._pca.eigenvalues)
        return float(eig[: self.dim].sum() / eig.sum()) if eig.sum() > 0 else 0.0


@dataclass
class IndexFactory:
    """What index to build; ``build(vectors)`` gives a searchable :class:`VectorIndex`.

    Args:
        kind: ``flat`` (exact), ``hnsw`` or ``ivfpq``.
        hnsw_m: HNSW neighbours per node.
        ef_construction / ef_search: HNSW candidate-list sizes at build / query time.
        nlist: IVF cells; ``None`` = about 4 * sqrt(N), capped so each cell has >= 39 training points.
        pq_m: PQ sub-quantisers (must divide the dimension); ``pq_bits``: bits per code.
        nprobe: IVF cells visited per query.
        device: ``cpu`` or ``cuda`` (flat only, needs faiss-gpu).
        threads: faiss OpenMP threads, ``None`` = faiss's default.
    """

    kind: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int = 16
    pq_bits: int = 8
    nprobe: int = 16
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index.kind: expected one of {list(KINDS)}, got {self.kind!r}")

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    def describe(self) -> dict[str, Any]:
        params: dict[str, Any] = {"flat": {}, "hnsw": {}, "ivfpq": {}}[self.kind]
        if self.kind == "hnsw":
            params = {"M": self.hnsw_m, "efConstruction": self.ef_construction, "efSearch": self.ef_search}
        elif self.kind == "ivfpq":
            params = {"nlist": self.nlist, "m": self.pq_m, "nbits": self.pq_bits, "nprobe": self.nprobe}
        return {"kind": self.kind, "metric": "inner product (cosine on L2-normalised vectors)", **params}

    def build(self, vectors: np.ndarray) -> VectorIndex:
        import faiss

        if self.threads:
            faiss.omp_set_num_threads(int(self.threads))
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = x.shape
        if self.kind == "flat":
            index: Any = faiss.IndexFlatIP(d)
            if self.device == "cuda":
                index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
        else:
            if d % self.pq_m:
                raise ValueError(f"index.pq_m={self.pq_m} must divide the embedding dimension {d}")
            nlist = self.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
            self.nlist = nlist
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFPQ(quantizer, d, nlist, self.pq_m, self.pq_bits, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = self.seed
            index.train(x)
            index.nprobe = self.nprobe
        index.add(x)
        return VectorIndex(index=index, vectors=x, exact=self.exact)


@dataclass
class VectorIndex:
    index: Any  # a faiss index holding ``vectors`` in order (row i = id i)
    vectors: np.ndarray  # (N, d) float32, kept for exact scores and recall measurement
    exact: bool

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, k), ids (Q, k)), best first; ids -1 where an approximate index found < k."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self.index.search(q, min(k, self.size))
        return scores, ids

    def scores(self, queries: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Exact inner products with every vector (Q, N), or with the given ids: the numbers an
        ``IndexFlatIP`` search ranks by, without the cost of sorting all N of them."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if ids is None:
            return q @ self.vectors.T
        return np.einsum("qd,qkd->qk", q, self.vectors[ids])


def recall_vs_exact(approx_ids: np.ndarray, exact_ids: np.ndarray, k: int) -> float:
    """Mean over queries of |approximate top-k ∩ exact top-k| / k."""
    a, e = approx_ids[:, :k], exact_ids[:, :k]
    hits = [len(set(x[x >= 0].tolist()) & set(y.tolist())) for x, y in zip(a, e, strict=True)]
    return float(np.mean(hits, dtype=np.float64) / e.shape[1]) if len(hits) else 0.0


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, batch: int = 1024) -> np.ndarray:
    """Exact top-k ids by inner product (faiss ``IndexFlatIP``), the reference for recall."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    out = [
        index.search(np.ascontiguousarray(queries[s : s + batch]), k)[1]
        for s in range(0, len(queries), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)
