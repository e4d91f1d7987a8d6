"""Semantic IDs: what every code-tuple item tokenizer shares (TIGER, Rajput et al., NeurIPS 2023, §3.1).

Pipeline: item text -> sentence embedding (``recbench.embeddings.text``, cached) -> ``n`` levels of codes
(the subclass: RQ-VAE, residual k-means, random) -> one extra level that makes colliding tuples unique
(the paper's 4th code) -> health report. Fitted codes are cached under ``cache_dir`` by the sha256 of the
embeddings and the tokenizer's parameters, so a changed encoder, template, dataset or hyper-parameter
never reuses stale codes.

Health (:func:`code_health`), reported in every result row: per level the codebook utilization (codes used
/ codebook size) and perplexity (exp of the entropy of code usage; = codebook size when usage is uniform),
the collision rate before de-duplication (share of items whose semantic tuple is shared with another
item), and the largest number of items behind one prefix of each length.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split
from recbench.embeddings.text import DEFAULT_ENCODER, encode_texts, render_texts
from recbench.utils.files import atomic_file

log = logging.getLogger(__name__)

CODES_VERSION = "1"  # bump when the meaning of cached codes changes


def default_template(columns: list[str]) -> str:
    """Every text column, labelled: ``"title: {title}. categories: {categories}"``."""
    return ". ".join(f"{c}: {{{c}}}" for c in columns)


def deduplicate(codes: np.ndarray) -> np.ndarray:
    """Append one level that numbers the items sharing a tuple (0, 1, 2, … in item order), so that every
    item has a unique tuple. Applied always (a 0 for unique tuples), as in TIGER §3.1."""
    codes = np.asarray(codes, dtype=np.int64)
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")  # items grouped by tuple, in item order within a group
    sorted_groups = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    rank_sorted = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    extra = np.empty(len(order), dtype=np.int64)
    extra[order] = rank_sorted
    return np.concatenate([codes, extra[:, None]], axis=1)


def code_health(codes: np.ndarray, code_sizes: list[int], semantic_levels: int) -> dict[str, Any]:
    """Utilization and perplexity per level, collision rate before de-duplication, max items per prefix.

    ``codes`` (I, L) with the first ``semantic_levels`` levels semantic and the rest de-duplication codes.
    """
    n = len(codes)
    levels = []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=code_sizes[level]).astype(np.float64)
        p = counts[counts > 0] / n
        levels.append(
            {
                "codebook_size": int(code_sizes[level]),
                "used": int((counts > 0).sum()),
                "utilization": float((counts > 0).sum() / code_sizes[level]),
                "perplexity": float(np.exp(-(p * np.log(p)).sum())),
            }
        )
    max_per_prefix = []
    for length in range(1, codes.shape[1] + 1):
        _, prefix_counts = np.unique(codes[:, :length], axis=0, return_counts=True)
        max_per_prefix.append(int(prefix_counts.max()))
    _, inverse, tuple_counts = np.unique(
        codes[:, :semantic_levels], axis=0, return_inverse=True, return_counts=True
    )
    shared = tuple_counts[inverse.reshape(-1)] > 1
    return {
        "items": n,
        "levels": levels,
        "semantic_levels": semantic_levels,
        "unique_semantic_tuples": len(tuple_counts),
        "collision_rate": float(shared.mean()),  # share of items whose semantic tuple is not unique
        "max_items_per_tuple": int(tuple_counts.max()),
        "max_items_per_prefix": max_per_prefix,  # prefix length 1, 2, …, L
        "unique_after_dedup": bool(len(np.unique(codes, axis=0)) == n),
    }


class SemanticIdTokenizer:
    """Base of the code-tuple tokenizers: embeds item text, quantizes, de-duplicates, reports health.

    Subclasses set ``name`` and implement :meth:`quantize` (embeddings -> (I, levels) codes) and
    :meth:`params` (everything that changes the codes, for the cache key).

    Args:
        num_levels: semantic levels (TIGER: 3).
        codebook_size: codes per level (TIGER: 256). Clipped to the number of items when there are fewer
            (tiny synthetic sets); the clipped size is what the health report and the vocabulary use.
        text_template: ``str.format`` template over the dataset's item-text columns; ``None`` = every
            column, labelled (see :func:`default_template`).
        encoder: a ``conf/encoder`` name (default: offline all-MiniLM-L6-v2) or a sentence-transformers
            model name or path; items are encoded in the symmetric role.
        cache_dir: where embeddings and fitted codes are cached (``None``: no cache).
        seed: seeds every random choice of the fit.
    """

    name = "semantic"

    def __init__(
        self,
        num_levels: int = 3,
        codebook_size: int = 256,
        text_template: str | None = None,
        encoder: str = DEFAULT_ENCODER,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        if num_levels < 1 or codebook_size < 2:
            raise ValueError(
                f"tokenizer: need num_levels >= 1 and codebook_size >= 2, got {num_levels}, {codebook_size}"
            )
        self.num_levels, self.codebook_size = num_levels, codebook_size
        self.text_template, self.encoder, self.seed = text_template, encoder, seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._codes: np.ndarray | None = None
        self.info: dict[str, Any] = {}

    # ---- what subclasses provide ------------------------------------------------------------------
    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        """(I, d) float32 -> (I, num_levels) int64 codes in ``0 .. codebook_size - 1``."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    # ---- the shared pipeline ----------------------------------------------------------------------
    def fit(self, dataset: SequenceDataset, split: Split | None = None) -> SemanticIdTokenizer:
        """Embed the dataset's item text (cached), then :meth:`fit_embeddings`."""
        if dataset.item_text.empty:
            why = dataset.item_text.attrs.get("no_text")
            raise ValueError(
                f"tokenizer={self.name}: dataset {dataset.name!r} has no item text"
                + (f" ({why})" if why else "")
                + "; semantic IDs need it (or use tokenizer=atomic or tokenizer=random)"
            )
        template = self.text_template or default_template(list(dataset.item_text.columns))
        texts = render_texts(dataset.item_text.loc[np.arange(dataset.num_items)], template)
        emb_cache = self.cache_dir / "text_embeddings" if self.cache_dir else None
        embeddings = encode_texts(texts, encoder=self.encoder, cache_dir=emb_cache)
        self.fit_embeddings(embeddings)
        self.info |= {"encoder": self.encoder, "text_template": template, "example_text": texts[0][:200]}
        return self

    def fit_embeddings(self, embeddings: np.ndarray) -> SemanticIdTokenizer:
        """Quantize (I, d) embeddings into de-duplicated code tuples; cached by the hash of the inputs."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        size = int(min(self.codebook_size, len(embeddings)))
        if size < self.codebook_size:
            log.warning(
                "tokenizer=%s: %d items < codebook_size %d; using %d codes per level",
                self.name,
                len(embeddings),
                self.codebook_size,
                size,
            )
        key_src = json.dumps(
            [CODES_VERSION, self.name, self.num_levels, size, self.seed, self.params()], sort_keys=True
        ).encode()
        key = hashlib.sha256(key_src + embeddings.tobytes()).hexdigest()[:16]
        path = self.cache_dir / "semantic_ids" / f"{self.name}-{key}.npy" if self.cache_dir else None
        if path is not None and path.is_file():
            log.info("semantic ids from cache %s", path)
            semantic = np.load(path)
        else:
            semantic = self.quantize(embeddings, size).astype(np.int64)
            if path is not None:
                with atomic_file(path) as f:
                    np.save(f, semantic)
        if (
            semantic.shape != (len(embeddings), self.num_levels)
            or semantic.min() < 0
            or semantic.max() >= size
        ):
            raise ValueError(
                f"tokenizer={self.name}: codes of shape {semantic.shape} in [{semantic.min()}, "
                f"{semantic.max()}]; expected ({len(embeddings)}, {self.num_levels}) in [0, {size - 1}]"
            )
        self._codes = deduplicate(semantic)
        self.code_sizes = [size] * self.num_levels + [int(self._codes[:, -1].max()) + 1]
        self.info = {"codes_key": key, **code_health(self._codes, self.code_sizes, self.num_levels)}
        log.info(
            "semantic ids (%s): collision rate %.4f, max %d items per tuple, utilization %s, perplexity %s",
            self.name,
            self.info["collision_rate"],
            self.info["max_items_per_tuple"],
            [round(lv["utilization"], 3) for lv in self.info["levels"]],
            [round(lv["perplexity"], 1) for lv in self.info["levels"]],
        )
        return self

    @property
    def semantic_levels(self) -> int:
        return self.num_levels

    def codes(self) -> np.ndarray:
        """(num_items, num_levels + 1) unique code tuple of each item (last level: de-duplication)."""
        if self._codes is None:
            raise RuntimeError(f"tokenizer={self.name}: call fit() before codes()")
        return self._codes

    def describe(self) -> dict[str, Any]:
        return {"tokenizer": self.name, "params": self.params(), "seed": self.seed, **self.info}
