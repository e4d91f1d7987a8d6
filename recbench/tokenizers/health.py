"""Semantic-ID health without training a model: do items that share a code prefix mean the same thing, get
bought together, and are rarely seen items spread over the codes or piled up?

For code tuples ``(I, L)`` (the first ``semantic_levels`` semantic, the rest de-duplication):

* **semantic coherence** at prefix length l: the mean cosine, in a fixed reference text embedding (MiniLM
  over the item title, whatever the tokenizer itself used), of item pairs that share their first l codes,
  beside the mean cosine of all item pairs. Exact: for unit vectors the sum of a group's pairwise cosines
  is ``(|Σ e|² - n) / 2``.
* **collaborative coherence** at prefix length l: among the pairs of distinct items that occur within
  ``window`` steps of each other in a training sequence, the share that shares its first l codes, divided
  by the share of all item pairs that does (the lift; 1 = no better than chance).
* **cold-item spread**: items seen at most ``cold_max_count`` times in training. The perplexity of their
  first-level codes against all items' (1: spread like everything else; lower: piled up), the largest
  share of them under one first-level code, and their collision rate (share whose semantic tuple is also
  another item's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

COLD_MAX_COUNT = 5
WINDOW = 3


def _groups(codes: np.ndarray, length: int) -> np.ndarray:
    _, inverse = np.unique(codes[:, :length], axis=0, return_inverse=True)
    return inverse.reshape(-1)


def _same_group_pairs(groups: np.ndarray) -> float:
    """Ordered pairs of distinct items in one group, over all ordered pairs of distinct items."""
    n = len(groups)
    sizes = np.bincount(groups).astype(np.float64)
    return float((sizes * (sizes - 1)).sum() / (n * (n - 1))) if n > 1 else 0.0


def semantic_coherence(codes: np.ndarray, embeddings: np.ndarray, levels: int) -> dict[str, Any]:
    e = embeddings.astype(np.float64)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    n = len(e)
    total = e.sum(0)
    random = float((total @ total - n) / (n * (n - 1))) if n > 1 else 0.0
    within = []
    for length in range(1, levels + 1):
        g = _groups(codes, length)
        sums = np.zeros((int(g.max()) + 1, e.shape[1]))
        np.add.at(sums, g, e)
        sizes = np.bincount(g).astype(np.float64)
        pairs = (sizes * (sizes - 1)).sum()
        within.append(float(((sums**2).sum(1) - sizes).sum() / pairs) if pairs else float("nan"))
    return {"by_prefix": within, "random": random}


def cooccurring_pairs(sequences: Sequence[np.ndarray], window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): every pair of distinct items at most ``window`` steps apart in one sequence."""
    a, b = [], []
    for seq in sequences:
        seq = np.asarray(seq)
        for k in range(1, window + 1):
            if len(seq) > k:
                a.append(seq[:-k])
                b.append(seq[k:])
    if not a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x, y = np.concatenate(a), np.concatenate(b)
    keep = x != y
    return x[keep], y[keep]


def collaborative_coherence(
    codes: np.ndarray, sequences: Sequence[np.ndarray], levels: int, window: int = WINDOW
) -> dict[str, Any]:
    a, b = cooccurring_pairs(sequences, window)
    shares, randoms, lifts = [], [], []
    for length in range(1, levels + 1):
        g = _groups(codes, length)
        share = float((g[a] == g[b]).mean()) if len(a) else float("nan")
        random = _same_group_pairs(g)
        shares.append(share)
        randoms.append(random)
        lifts.append(share / random if random > 0 else float("nan"))
    return {"window": window, "pairs": len(a), "share": shares, "random_share": randoms, "lift": lifts}


def _perplexity(values: np.ndarray) -> float:
    if not len(values):
        return float("nan")
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def cold_spread(
    codes: np.ndarray, train_counts: np.ndarray, levels: int, cold_max_count: int = COLD_MAX_COUNT
) -> dict[str, Any]:
    cold = train_counts <= cold_max_count
    first = codes[:, 0]
    out: dict[str, Any] = {"max_count": cold_max_count, "items": int(cold.sum())}
    if not cold.any():
        return out
    _, inverse, counts = np.unique(codes[:, :levels], axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.reshape(-1)] > 1
    ppl_cold, ppl_all = _perplexity(first[cold]), _perplexity(first)
    _, cold_counts = np.unique(first[cold], return_counts=True)
    out |= {
        "level1_perplexity": ppl_cold,
        "level1_perplexity_all": ppl_all,
        # perplexity a random subset of the same size would have is lower than all items' when it is small;
        # the ratio is still the readable summary: 1 = spread like the catalogue
        "level1_perplexity_ratio": ppl_cold / ppl_all,
        "max_share_in_one_code": float(cold_counts.max() / cold.sum()),
        "collision_rate": float(shared[cold].mean()),
    }
    return out


def tokenizer_health(
    codes: np.ndarray,
    semantic_levels: int,
    embeddings: np.ndarray | None,
    sequences: Sequence[np.ndarray],
    train_counts: np.ndarray,
    window: int = WINDOW,
) -> dict[str, Any]:
    """The three reports above for one tokenizer's codes (``embeddings``: the reference text embedding,
    None where the dataset has no item text)."""
    codes = np.asarray(codes, dtype=np.int64)
    levels = max(1, min(semantic_levels, codes.shape[1]))
    return {
        "semantic_coherence": semantic_coherence(codes, embeddings, levels)
        if embeddings is not None
        else None,
        "collaborative_coherence": collaborative_coherence(codes, sequences, levels, window),
        "cold": cold_spread(codes, train_counts, levels),
    }
