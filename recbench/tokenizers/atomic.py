"""Atomic item ids: one token per item (the ID-based baseline; SASRec, BERT4Rec).

Semantic-ID tokenizers (RQ-VAE, RQ-KMeans) map an item to a tuple of codes instead; the atomic one is
the identity, kept as a component so that every row states which tokenization it used. It follows the
same interface (``fit(dataset)``, ``codes()``, ``code_sizes``, ``semantic_levels``, ``describe()``), so a
generative model can also decode atomic ids (one step over every item: the paper's ablation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split


class AtomicTokenizer:
    name = "atomic"
    semantic_levels = 1

    def __init__(self, **unexpected: Any) -> None:
        if unexpected:  # typically keys an experiment file set for a semantic-ID tokenizer
            keys = ", ".join(sorted(unexpected))
            removal = " ".join(f"'~tokenizer.{k}'" for k in sorted(unexpected))
            raise ValueError(
                f"tokenizer=atomic takes no parameters, got: {keys}. If an experiment file set them for "
                f"another tokenizer, remove them on the command line: {removal}"
            )

    def fit(self, dataset: SequenceDataset, split: Split | None = None) -> AtomicTokenizer:
        self.num_items = dataset.num_items
        self.code_sizes = [dataset.num_items]
        return self

    def codes(self) -> np.ndarray:
        """(num_items, 1) code tuple of each item."""
        return np.arange(self.num_items, dtype=np.int64)[:, None]

    def describe(self) -> dict[str, Any]:
        return {"tokenizer": self.name, "items": self.num_items}
