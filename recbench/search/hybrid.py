"""Hybrid lexical + dense ranking by reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009):
score(d) = sum over rankers of 1 / (k + rank(d)), rank 1 = best."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from recbench.search.bm25 import BM25Ranker
from recbench.search.dense import DenseRanker


class HybridRanker:
    """RRF of a :class:`BM25Ranker` and a :class:`DenseRanker`.

    Args:
        rrf_k: the RRF constant (60 in Cormack et al.).
        depth: when retrieving, how many products each ranker contributes before fusion (products
            outside a ranker's top ``depth`` get nothing from it).
    """

    def __init__(self, bm25: BM25Ranker, dense: DenseRanker, rrf_k: float = 60.0, depth: int = 1000) -> None:
        self.bm25, self.dense, self.rrf_k, self.depth = bm25, dense, rrf_k, depth

    def fit(self, corpus: pd.DataFrame) -> None:
        self.bm25.fit(corpus)
        self.dense.fit(corpus)

    def _rrf(self, scores: np.ndarray) -> np.ndarray:
        # tied scores share the best rank of their group: fusion never depends on candidate order
        return 1.0 / (self.rrf_k + rankdata(-np.asarray(scores, dtype=np.float64), method="min"))

    def score(self, queries: Sequence[str], candidates: Sequence[np.ndarray]) -> list[np.ndarray]:
        lexical = self.bm25.score(queries, candidates)
        dense = self.dense.score(queries, candidates)
        return [self._rrf(a) + self._rrf(b) for a, b in zip(lexical, dense, strict=True)]

    def retrieve(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        depth = max(k, self.depth)
        runs = [self.bm25.retrieve(queries, depth), self.dense.retrieve(queries, depth)]
        scores = np.full((len(queries), k), -np.inf, dtype=np.float64)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            fused: dict[int, float] = {}
            for s, i in runs:
                ok = i[row] >= 0
                for doc, x in zip(i[row][ok].tolist(), self._rrf(s[row][ok]).tolist(), strict=True):
                    fused[doc] = fused.get(doc, 0.0) + x
            # best fused score first; equal scores in corpus (product_id) order
            best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
            ids[row, : len(best)] = [d for d, _ in best]
            scores[row, : len(best)] = [x for _, x in best]
        return scores, ids

    def describe(self) -> dict[str, Any]:
        return {
            "ranker": "hybrid-rrf",
            "rrf_k": self.rrf_k,
            "depth": self.depth,
            "bm25": self.bm25.describe(),
            "dense": self.dense.describe(),
            "index_recall": self.dense.index_recall,
        }
