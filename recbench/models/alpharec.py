"""AlphaRec-style collaborative filtering from language representations (Sheng et al., ICLR 2025,
"Language Representations Can be What Recommenders Need"): no ID embeddings at all.

* An item's language representation is its frozen text embedding; a user's is the mean of the
  representations of its training items.
* A shared MLP (linear, LeakyReLU, linear) maps both into the recommendation space.
* LightGCN propagation over the normalised user-item graph of the training interactions averages the
  layers (:mod:`recbench.models.lightgcn`).
* Scores are cosines; trained with InfoNCE over sampled negatives (``loss=infonce``, temperature τ).

Only the MLP is trained. A user is scored from its training items (``test_history: train_only``), as the
graph is. Ours: the encoder is a ``conf/encoder`` one (AlphaRec used text-embedding-3-large), and the
settings below are the model defaults, not tuned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.data.pairs import PairBatch
from recbench.embeddings.text import DEFAULT_ENCODER, item_text_embeddings
from recbench.models.lightgcn import normalized_adjacency, propagate_once


def user_language(train_matrix: sp.csr_matrix, item_lang: np.ndarray) -> np.ndarray:
    """(U, T) the mean language representation of each user's training items (zero for a user with none)."""
    x = sp.csr_matrix(train_matrix, dtype=np.float32)
    counts = np.asarray(x.sum(1)).ravel()
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0).astype(np.float32)
    return np.asarray(sp.diags(inv) @ x @ item_lang, dtype=np.float32)


class AlphaRec(nn.Module):
    """Args:
    num_users, num_items: graph sizes.
    train_matrix: (U, I) binary CSR of the training interactions.
    item_text: the dataset's item text (index = item index).
    template, encoder: the item text and the frozen encoder (a ``conf/encoder`` name).
    hidden_size, embedding_size: the MLP's hidden and output widths.
    num_layers: propagation layers (0: the MLP alone).
    """

    test_history = "train_only"
    max_history = 0  # no history is read: the user's representation is built from its training items

    def __init__(
        self,
        num_users: int,
        num_items: int,
        train_matrix: sp.csr_matrix,
        item_text: pd.DataFrame,
        template: str = "{title}",
        encoder: str = DEFAULT_ENCODER,
        hidden_size: int = 256,
        embedding_size: int = 64,
        num_layers: int = 2,
        batch_size: int = 64,
        cache_dir: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if train_matrix.shape != (num_users, num_items):
            expected = (num_users, num_items)
            raise ValueError(f"train_matrix has shape {train_matrix.shape}, expected {expected}")
        if len(item_text) != num_items:
            raise ValueError(f"item_text has {len(item_text)} rows for {num_items} items")
        if num_layers < 0:
            raise ValueError(f"model.net.num_layers must be >= 0, got {num_layers}")
        items = item_text_embeddings(item_text, template, encoder, batch_size, cache_dir, device)
        lang = np.concatenate([user_language(train_matrix, items), items]).astype(np.float32)
        self.num_users, self.num_layers = num_users, num_layers
        self.lang: torch.Tensor
        self.register_buffer("lang", torch.from_numpy(lang), persistent=False)  # (U + I, T), frozen
        self.mlp = nn.Sequential(
            nn.Linear(lang.shape[1], hidden_size), nn.LeakyReLU(), nn.Linear(hidden_size, embedding_size)
        )
        self.graph: torch.Tensor
        self.register_buffer("graph", normalized_adjacency(train_matrix), persistent=False)
        self._cached: tuple[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] | None = None

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, D) user and (I, D) item vectors: the MLP's output averaged over layers 0..K, unit length."""
        e = self.mlp(self.lang)
        total = e
        for _ in range(self.num_layers):
            e = propagate_once(self.graph, e)
            total = total + e
        total = F.normalize(total / (self.num_layers + 1), dim=-1)
        return total[: self.num_users], total[self.num_users :]

    def training_terms(self, batch: PairBatch) -> dict[str, Any]:
        self._cached = None  # the step that follows changes the weights; a fused optimizer leaves their
        # version counters as they were, so the cache key alone would not see it
        users, items = self.propagate()
        u = users[batch.users]
        return {
            "pos": (u * items[batch.items]).sum(-1),
            "neg": torch.einsum("bd,bkd->bk", u, items[batch.negatives]),
        }

    def score(self, batch: EvalBatch) -> torch.Tensor:
        # One propagation per evaluation pass, reused while the MLP's weights are unchanged.
        params = list(self.mlp.parameters())
        key = (*(p._version for p in params), params[0].data_ptr())
        if self._cached is None or self._cached[0] != key:
            with torch.no_grad():
                self._cached = (key, self.propagate())
        users, items = self._cached[1]
        return users[batch.users] @ items.T
