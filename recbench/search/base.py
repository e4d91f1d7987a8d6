"""What a search protocol needs from a ranker (BM25, dense bi-encoder, hybrid)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd


class Ranker(Protocol):
    def fit(self, corpus: pd.DataFrame) -> None:
        """Index the product corpus (index = product index, str text columns)."""

    def score(self, queries: Sequence[str], candidates: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per query, one score per candidate product (higher = better)."""
        ...

    def retrieve(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, k), product ids (Q, k)) over the whole corpus, best first; -1 pads."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings and measurements for the result row (text template, encoder, index, ...)."""
        ...


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a (Q, N) score matrix, best first; equal scores keep corpus order (product_id order)."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order
