"""Random semantic IDs: each item gets a uniformly random code per level, ignoring its content.

The ablation of TIGER (Rajput et al. 2023, §4.3, "Random ID"): same tuple length and vocabulary as the
RQ-VAE codes, so any gap to them is what the semantic structure is worth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split
from recbench.tokenizers.semantic import SemanticIdTokenizer


class RandomIdTokenizer(SemanticIdTokenizer):
    name = "random"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cache_dir", None)  # generated in microseconds: nothing to cache
        super().__init__(**kwargs)

    def fit(self, dataset: SequenceDataset, split: Split | None = None) -> RandomIdTokenizer:
        """No text needed: random codes for ``dataset.num_items`` items."""
        self.fit_embeddings(np.zeros((dataset.num_items, 1), dtype=np.float32))
        return self

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.integers(0, codebook_size, size=(len(embeddings), self.num_levels))
