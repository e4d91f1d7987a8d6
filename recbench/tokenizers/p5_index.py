"""Item indexing of P5 (Hua et al., SIGIR-AP 2023, "How to Index Item IDs for Recommendation Foundation
Models"), as code tuples:

* **sequential indexing** (``p5_sequential``): items numbered in the order they first appear in the users'
  sequences (recbench's item indices already are: users in file order, the rule P5 uses), each number
  written in base ``codebook_size`` with ``num_levels`` digits, most significant first. Items bought one
  after the other by early users get neighbouring numbers and share leading digits.
* **collaborative indexing** (``p5_collaborative``): recursive spectral clustering of the item
  co-occurrence graph of the *training* interactions (items two users' training histories share, ``XᵀX``
  without its diagonal): level 1 splits the catalogue into ``codebook_size`` clusters, level 2 each
  cluster into as many, and so on; a group of at most ``codebook_size`` items numbers its members instead.
  Items often bought by the same users share prefixes.

Neither reads item text. The de-duplication level makes every tuple unique, as for every tokenizer.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split
from recbench.tokenizers.semantic import SemanticIdTokenizer

log = logging.getLogger(__name__)


class P5SequentialTokenizer(SemanticIdTokenizer):
    name = "p5_sequential"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cache_dir", None)  # arithmetic: nothing to cache
        super().__init__(**kwargs)

    def fit(self, dataset: SequenceDataset, split: Split | None = None) -> P5SequentialTokenizer:
        self.fit_embeddings(np.zeros((dataset.num_items, 1), dtype=np.float32))
        return self

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        n = len(embeddings)
        if codebook_size**self.num_levels < n:
            raise ValueError(
                f"tokenizer={self.name}: {self.num_levels} digits in base {codebook_size} number "
                f"{codebook_size**self.num_levels} items, the catalogue has {n}: raise tokenizer.num_levels "
                "or tokenizer.codebook_size"
            )
        index = np.arange(n, dtype=np.int64)
        powers = codebook_size ** np.arange(self.num_levels - 1, -1, -1, dtype=np.int64)
        return (index[:, None] // powers[None, :]) % codebook_size


def cooccurrence(dataset: SequenceDataset, split: Split) -> sp.csr_matrix:
    """(I, I) how many users have both items among their training interactions (diagonal zero)."""
    from recbench.inputs import RunContext, train_matrix

    x = train_matrix(RunContext(dataset, split, None)).astype(np.float64)
    c = (x.T @ x).tocsr()
    c.setdiag(0)
    c.eliminate_zeros()
    return c


def spectral_split(graph: sp.csr_matrix, k: int, seed: int) -> np.ndarray:
    """(n,) cluster of each node of a symmetric affinity graph, k clusters (sklearn, QR label assignment:
    no k-means restarts to seed)."""
    from sklearn.cluster import SpectralClustering

    n = graph.shape[0]
    # a whisper of affinity to one hub keeps a graph with isolated nodes connected (the embedding is
    # otherwise undefined for them); it changes no relative order among connected items
    hub = sp.csr_matrix((np.full(n, 1e-6), (np.zeros(n, dtype=np.int64), np.arange(n))), shape=(n, n))
    affinity = graph + hub + hub.T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpectralClustering(
            n_clusters=k, affinity="precomputed", assign_labels="cluster_qr", random_state=seed
        )
        return np.asarray(model.fit_predict(affinity), dtype=np.int64)


def graph_fingerprint(graph: sp.csr_matrix) -> np.ndarray:
    """(I, 2) float32 per item: its weighted degree and a 24-bit hash of its row (neighbours and weights),
    what the codes' cache key is computed from."""
    import hashlib

    g = sp.csr_matrix(graph)
    out = np.zeros((g.shape[0], 2), dtype=np.float32)
    out[:, 0] = np.asarray(g.sum(1)).ravel()
    for i in range(g.shape[0]):
        a, b = g.indptr[i], g.indptr[i + 1]
        digest = hashlib.sha256(g.indices[a:b].tobytes() + g.data[a:b].tobytes()).digest()
        out[i, 1] = int.from_bytes(digest[:3], "little")
    return out


class P5CollaborativeTokenizer(SemanticIdTokenizer):
    name = "p5_collaborative"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._graph: sp.csr_matrix | None = None

    def fit(self, dataset: SequenceDataset, split: Split | None = None) -> P5CollaborativeTokenizer:
        if split is None:
            raise ValueError(
                f"tokenizer={self.name} learns from the training interactions: fit(dataset, split) needs the "
                "protocol's split"
            )
        self._graph = cooccurrence(dataset, split)
        # the graph is the input: each item's row of it, as a fingerprint, keys the cached codes
        super().fit_embeddings(graph_fingerprint(self._graph))
        return self

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        assert self._graph is not None
        codes = np.zeros((self._graph.shape[0], self.num_levels), dtype=np.int64)
        groups = [np.arange(self._graph.shape[0])]
        for level in range(self.num_levels):
            deeper = []
            for members in groups:
                if len(members) <= codebook_size:
                    codes[members, level] = np.arange(len(members))
                    continue  # numbered: deeper levels stay 0
                labels = spectral_split(self._graph[members][:, members], codebook_size, self.seed + level)
                codes[members, level] = labels
                deeper += [members[labels == c] for c in range(codebook_size) if (labels == c).any()]
            groups = deeper
            log.info("p5_collaborative: level %d done, %d groups to split further", level + 1, len(groups))
        return codes
