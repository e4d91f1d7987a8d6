"""BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", FnTIR 2009),
through the bm25s library (Lù, 2024), Lucene's variant by default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recbench.embeddings.text import render_texts
from recbench.search.base import top_k


class BM25Ranker:
    """Lexical ranking of products by BM25 over a text template of their fields.

    Args:
        template: ``str.format`` template over the product fields (title, brand, color, bullets,
            description), e.g. ``"{title} {brand} {bullets}"``.
        k1, b: term-frequency saturation and length normalisation.
        method: bm25s scoring variant (``lucene``, ``robertson``, ``atire``, ``bm25l``, ``bm25+``).
        stopwords: bm25s stop-word list (``en``) or ``null`` for none.
        batch_size: queries scored per block when retrieving (bounds the (block, N) score matrix).
    """

    def __init__(
        self,
        template: str = "{title} {brand} {bullets}",
        k1: float = 1.2,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | None = "en",
        batch_size: int = 256,
    ) -> None:
        self.template, self.k1, self.b, self.method = template, k1, b, method
        self.stopwords, self.batch_size = stopwords, batch_size
        self._bm25: Any = None
        self._n = 0

    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        out = bm25s.tokenize(list(texts), stopwords=self.stopwords, return_ids=False, show_progress=False)
        assert isinstance(out, list)
        return out

    def fit(self, corpus: pd.DataFrame) -> None:
        import bm25s

        texts = render_texts(corpus, self.template)
        self._bm25 = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        tokens = bm25s.tokenize(texts, stopwords=self.stopwords, show_progress=False)
        self._bm25.index(tokens, show_progress=False)
        self._n = len(texts)

    def _scores(self, query_tokens: list[str]) -> np.ndarray:
        if self._bm25 is None:
            raise RuntimeError("BM25Ranker: fit the corpus first")
        # bm25s rejects a query made only of words it has never seen; such a query scores 0 everywhere
        known = [t for t in query_tokens if t in self._bm25.vocab_dict]
        if not known:
            return np.zeros(self._n, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def score(self, queries: Sequence[str], candidates: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self._scores(t)[c] for t, c in zip(self._tokens(queries), candidates, strict=True)]

    def retrieve(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = self._tokens(queries)
        scores, ids = [], []
        for s in range(0, len(tokens), self.batch_size):
            block = np.stack([self._scores(t) for t in tokens[s : s + self.batch_size]])  # (B, N)
            sc, ix = top_k(block, k)
            scores.append(sc)
            ids.append(ix)
        return np.concatenate(scores), np.concatenate(ids)

    def describe(self) -> dict[str, Any]:
        return {
            "ranker": "bm25",
            "template": self.template,
            "bm25": {"k1": self.k1, "b": self.b, "method": self.method, "stopwords": self.stopwords},
            "library": "bm25s",
            "n_params": 0,
        }
