"""Atomic item ids: one token per item (the ID-based baseline; SASRec, BERT4Rec).

Semantic-ID tokenizers (RQ-VAE, RQ-KMeans) map an item to a tuple of codes instead; the atomic one is
the identity, kept as a component so that every row states which tokenization it used.
"""

from __future__ import annotations

import numpy as np


class AtomicTokenizer:
    name = "atomic"

    def fit(self, num_items: int) -> AtomicTokenizer:
        self.num_items = num_items
        return self

    def codes(self) -> np.ndarray:
        """(num_items, 1) code tuple of each item."""
        return np.arange(self.num_items, dtype=np.int64)[:, None]
