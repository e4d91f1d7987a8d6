"""SASRec over semantic IDs: an item's vector (input and tied output) is built from the embeddings of its
code tuple instead of one free vector per item, as in Singh et al. (RecSys 2024, "Better Generalization
with Semantic IDs: A Case Study in Ranking for Recommendations"). Items that share codes share
parameters, which is what should help items seen rarely in training (the rows' cold slice).

``pieces`` says which parts of the tuple ``(c_1, …, c_L)`` (the tokenizer's, de-duplication level last)
get an embedding, summed into the item vector:

* ``unigram``: each level's code, ``E_1[c_1] + … + E_L[c_L]`` (one table per level);
* ``prefix``: each prefix, ``E[(c_1)] + E[(c_1, c_2)] + … + E[(c_1, …, c_L)]``, one row per prefix that
  occurs in the catalogue (no hashing, no collisions; the full tuple is unique, so this includes a
  per-item vector);
* ``semantic_prefix``: the prefixes of the semantic levels only (no per-item vector: items sharing their
  semantic tuple share their vector; the most parameter-sharing choice).

``with_id`` adds the atomic ID embedding. With ``tokenizer=atomic`` (one level: the item) ``unigram`` is
SASRec up to its initialisation. Everything else is SASRec's (:mod:`recbench.models.sasrec`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from recbench.models.sasrec import SASRec

PIECES = ("unigram", "prefix", "semantic_prefix")


def piece_ids(codes: np.ndarray, pieces: str, semantic_levels: int) -> tuple[np.ndarray, list[int]]:
    """(I, P) the row of each of an item's P pieces in its table, and each table's size."""
    codes = np.asarray(codes, dtype=np.int64)
    if pieces == "unigram":
        sizes = [int(codes[:, j].max()) + 1 for j in range(codes.shape[1])]
        return codes, sizes
    if pieces not in PIECES:
        raise ValueError(f"model.net.pieces must be one of {PIECES}, got {pieces!r}")
    length = codes.shape[1] if pieces == "prefix" else min(semantic_levels, codes.shape[1])
    ids, sizes = [], []
    for n in range(1, length + 1):
        _, inverse = np.unique(codes[:, :n], axis=0, return_inverse=True)
        ids.append(inverse.reshape(-1))
        sizes.append(int(inverse.max()) + 1)
    return np.stack(ids, axis=1), sizes


class SemanticIdSASRec(SASRec):
    """Args (besides SASRec's):
    item_codes: (I, L) the tokenizer's code tuple of each item.
    semantic_levels: how many leading levels are semantic (the rest de-duplicate).
    pieces: ``unigram``, ``prefix`` or ``semantic_prefix`` (module docstring).
    with_id: add the atomic ID embedding.
    """

    def __init__(
        self,
        num_items: int,
        item_codes: np.ndarray,
        semantic_levels: int = 1,
        pieces: str = "unigram",
        with_id: bool = False,
        **sasrec: Any,
    ) -> None:
        super().__init__(num_items, **sasrec)
        if len(item_codes) != num_items:
            raise ValueError(f"item_codes has {len(item_codes)} rows for {num_items} items")
        ids, sizes = piece_ids(item_codes, pieces, semantic_levels)
        self.pieces, self.with_id = pieces, with_id
        hidden, std = self.item_emb.embedding_dim, float(sasrec.get("init_std", 0.02))
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.piece_rows: torch.Tensor
        self.register_buffer("piece_rows", torch.from_numpy(ids + offsets), persistent=False)  # (I, P)
        self.piece_emb = nn.Embedding(int(sum(sizes)), hidden)  # every table, stacked
        nn.init.normal_(self.piece_emb.weight, std=std)
        if not with_id:
            del self.item_emb  # no free per-item vector: not a parameter, not counted

    def item_table(self) -> torch.Tensor:
        items = self.piece_emb(self.piece_rows).sum(1)  # (I, D)
        if self.with_id:
            items = items + self.item_emb.weight[1:]
        return torch.cat([torch.zeros_like(items[:1]), items])  # row 0: padding, the zero vector
