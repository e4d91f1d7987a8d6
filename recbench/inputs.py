"""Runtime inputs: what a model needs that is known only once the data is read and the items tokenized.

A model config names them, for its network and for its recipe::

    inputs:
      net: [num_items, item_text]      # keyword arguments of model.net
      module: [item_codes]             # keyword arguments of model.module (besides net, loss, metrics…)

and :data:`BUILDERS` says how each is built (once per run, only when some model asks for it). A new family
adds a row here, never a branch in ``run.py``. A model config without ``inputs`` takes ``num_items``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split
from recbench.errors import ConfigError


@dataclass
class RunContext:
    """What runtime inputs are built from."""

    dataset: SequenceDataset
    split: Split
    tokenizer: Any
    _built: dict[str, Any] = field(default_factory=dict)


def train_interactions(c: RunContext) -> tuple[np.ndarray, np.ndarray]:
    """(users, items), each (N_train,): every training interaction (the items before each user's
    validation target), what a model may learn from."""
    ds = c.dataset
    keep = np.arange(ds.num_interactions) < np.repeat(c.split.train_end, ds.lengths())
    return np.repeat(np.arange(ds.num_users), ds.lengths())[keep], ds.items[keep]


def train_items(c: RunContext) -> np.ndarray:
    """(N_train,) the item index of every training interaction."""
    return train_interactions(c)[1]


def train_matrix(c: RunContext) -> sp.csr_matrix:
    """(U, I) float32 CSR, 1 where user u has item i among its training interactions (repeats count
    once): what collaborative-filtering models fit. Users with no evaluation case (too short for the
    protocol) keep their rows, as they are in the training data."""
    users, items = train_interactions(c)
    ones = np.ones(len(users), dtype=np.float32)
    m = sp.csr_matrix((ones, (users, items)), shape=(c.dataset.num_users, c.dataset.num_items))
    m.data[:] = 1.0  # building the CSR summed the repeats
    return m


def train_item_counts(c: RunContext) -> np.ndarray:
    """(I,) int64: how often each item occurs in the training interactions."""
    return np.bincount(train_items(c), minlength=c.dataset.num_items).astype(np.int64)


BUILDERS: dict[str, Callable[[RunContext], Any]] = {
    "num_items": lambda c: c.dataset.num_items,
    "num_users": lambda c: c.dataset.num_users,
    "item_text": lambda c: c.dataset.item_text,  # text models (text_zeroshot)
    "code_sizes": lambda c: c.tokenizer.code_sizes,  # semantic-ID models: the vocabulary per level
    "item_codes": lambda c: c.tokenizer.codes(),  # (I, levels) code tuple of every item
    "semantic_levels": lambda c: c.tokenizer.semantic_levels,  # levels that are semantic (the rest dedup)
    "train_item_counts": train_item_counts,  # popularity in the training interactions (pop)
    "train_matrix": train_matrix,  # (U, I) binary CSR of the training interactions (CF models)
}
DEFAULT: dict[str, list[str]] = {"net": ["num_items"], "module": []}


def build_inputs(context: RunContext, names: Sequence[str], key: str) -> dict[str, Any]:
    """``{name: value}`` for the inputs ``names`` that config key ``key`` asks for."""
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise ConfigError(
            f"{key} names unknown runtime input(s) {unknown}; known: {sorted(BUILDERS)} (recbench/inputs.py)"
        )
    out = {}
    for name in names:
        if name not in context._built:
            context._built[name] = BUILDERS[name](context)
        out[name] = context._built[name]
    return out


def model_inputs(model_cfg: Any, context: RunContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """(network kwargs, recipe kwargs) that a model config's ``inputs`` asks for."""
    declared = model_cfg.get("inputs") or {}
    unknown = sorted(set(declared) - set(DEFAULT))
    if unknown:
        raise ConfigError(f"model.inputs has {unknown}; expected the keys {sorted(DEFAULT)}")
    return tuple(  # type: ignore[return-value]
        build_inputs(context, list(declared.get(part, DEFAULT[part])), f"model.inputs.{part}")
        for part in ("net", "module")
    )
