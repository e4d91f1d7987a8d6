"""Semantic + hash IDs ("Best of Two Worlds"-style): a semantic prefix from residual k-means over the item
text, then ``hash_levels`` codes hashed from the item's own (raw) id into ``codebook_size`` buckets. The
prefix carries meaning and is shared by similar items; the hashed suffix is item-specific without a table
of one vector per item, and does not depend on the catalogue's order. Items still sharing a whole tuple
are numbered by the de-duplication level, as always.

``num_levels`` counts every level before de-duplication: ``num_levels - hash_levels`` semantic ones."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split
from recbench.tokenizers.rqkmeans import RQKMeansTokenizer


def hashed_codes(item_ids: np.ndarray, levels: int, buckets: int, seed: int) -> np.ndarray:
    """(I, levels) codes in 0 .. buckets - 1 from sha256 of (seed, level, raw item id)."""
    out = np.zeros((len(item_ids), levels), dtype=np.int64)
    for i, item in enumerate(item_ids):
        for level in range(levels):
            digest = hashlib.sha256(f"{seed}:{level}:{item}".encode()).digest()
            out[i, level] = int.from_bytes(digest[:8], "little") % buckets
    return out


class SemanticHashTokenizer(RQKMeansTokenizer):
    """Args (besides :class:`RQKMeansTokenizer`'s): ``hash_levels`` hashed levels at the end."""

    name = "semantic_hash"

    def __init__(self, hash_levels: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 1 <= hash_levels < self.num_levels:
            raise ValueError(
                f"tokenizer.hash_levels must be in [1, num_levels - 1] = [1, {self.num_levels - 1}], "
                f"got {hash_levels}"
            )
        self.hash_levels = hash_levels
        self._item_ids: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "hash_levels": self.hash_levels}

    @property
    def semantic_levels(self) -> int:
        return self.num_levels - self.hash_levels

    def fit(self, dataset: SequenceDataset, split: Split | None = None) -> SemanticHashTokenizer:
        self._item_ids = np.asarray(dataset.item_ids)
        super().fit(dataset, split)
        return self

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        ids = self._item_ids if self._item_ids is not None else np.arange(len(embeddings)).astype(str)
        semantic_levels, full = self.semantic_levels, self.num_levels
        self.num_levels = semantic_levels  # residual k-means for the semantic prefix only
        try:
            prefix = super().quantize(embeddings, codebook_size)
        finally:
            self.num_levels = full
        return np.concatenate([prefix, hashed_codes(ids, self.hash_levels, codebook_size, self.seed)], axis=1)
