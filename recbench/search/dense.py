"""Zero-shot dense bi-encoder retrieval: queries and products embedded by the same off-the-shelf
sentence encoder (default all-MiniLM-L6-v2; Reimers & Gurevych, EMNLP 2019), ranked by cosine through
faiss, optionally after PCA fitted on the corpus — the setting of "Do We Really Need Specialization?
Evaluating Generalist Text Embeddings for Zero-Shot Recommendation and Search" (RecSys 2025)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recbench.embeddings.index import PCA, IndexFactory, VectorIndex, exact_topk, recall_vs_exact
from recbench.embeddings.text import DEFAULT_ENCODER, encode_texts, render_texts


class DenseRanker:
    """Bi-encoder ranking.

    Args:
        encoder: a ``conf/encoder`` name (offline default all-MiniLM-L6-v2) or a sentence-transformers
            model name or path. Products are encoded as passages and queries as queries (E5's prefixes).
        template: product text template over title / brand / color / bullets / description.
        query_template: query text template over ``{query}`` (the encoder adds its own role prefix).
        pca_dim: reduce embeddings to this many dimensions with PCA fitted on the corpus (None: off).
        index: the faiss index (exact ``flat`` by default); approximate indexes report recall vs exact.
        recall_ks: cut-offs at which an approximate index's recall against exact search is measured.
    """

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        template: str = "{title}",
        query_template: str = "{query}",
        batch_size: int = 64,
        pca_dim: int | None = None,
        index: IndexFactory | None = None,
        recall_ks: Sequence[int] = (10, 100),
        cache_dir: str | None = None,
        device: str | None = None,
    ) -> None:
        self.encoder, self.template, self.query_template = encoder, template, query_template
        self.batch_size, self.pca_dim, self.cache_dir, self.device = batch_size, pca_dim, cache_dir, device
        self.index_factory = index or IndexFactory()
        self.recall_ks = [int(k) for k in recall_ks]
        self.pca: PCA | None = None
        self.index: VectorIndex | None = None
        self.index_recall: dict[str, float] | None = None
        self.seconds: dict[str, float] = {}

    def _encode(self, texts: list[str], role: str) -> np.ndarray:
        return encode_texts(
            texts,
            self.encoder,
            batch_size=self.batch_size,
            cache_dir=self.cache_dir,
            device=self.device,
            role=role,
        )

    def fit(self, corpus: pd.DataFrame) -> None:
        t = time.perf_counter()
        emb = self._encode(render_texts(corpus, self.template), "passage")
        self.seconds["encode_corpus"] = time.perf_counter() - t
        if self.pca_dim:
            self.pca = PCA(self.pca_dim).fit(emb)
            emb = self.pca.transform(emb)
        t = time.perf_counter()
        self.index = self.index_factory.build(emb)
        self.seconds["build_index"] = time.perf_counter() - t

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        frame = pd.DataFrame({"query": list(queries)})
        q = self._encode(render_texts(frame, self.query_template), "query")
        return self.pca.transform(q) if self.pca is not None else q

    def _index(self) -> VectorIndex:
        if self.index is None:
            raise RuntimeError("DenseRanker: fit the corpus first")
        return self.index

    def score(self, queries: Sequence[str], candidates: Sequence[np.ndarray]) -> list[np.ndarray]:
        # Reranking a judged list is exact whatever the index: every candidate's cosine is computed.
        index, q = self._index(), self.embed_queries(queries)
        return [index.vectors[c] @ q[i] for i, c in enumerate(candidates)]

    def retrieve(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._index()
        q = self.embed_queries(queries)
        t = time.perf_counter()
        scores, ids = index.search(q, k)
        self.seconds["search"] = time.perf_counter() - t
        if not index.exact:
            ks = [x for x in self.recall_ks if x <= ids.shape[1]] or [ids.shape[1]]
            exact = exact_topk(index.vectors, q, max(ks))
            self.index_recall = {f"recall@{x}": recall_vs_exact(ids, exact, x) for x in ks}
        return scores, ids

    def describe(self) -> dict[str, Any]:
        index = self.index_factory.describe()
        return {
            "ranker": "dense",
            "encoder": self.encoder,
            "template": self.template,
            "query_template": self.query_template,
            "pca_dim": self.pca_dim,
            "pca_explained_variance": self.pca.explained_variance() if self.pca is not None else None,
            "dim": int(self.index.vectors.shape[1]) if self.index is not None else None,
            "index": index,
            "index_recall": self.index_recall,
            "seconds": dict(self.seconds),
        }
