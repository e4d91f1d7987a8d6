"""Zero-shot sequential recommendation with a generalist text encoder: no training at all.

Every item is embedded from its text by an off-the-shelf sentence encoder (default all-MiniLM-L6-v2);
a user is the recency-weighted mean of their history items' embeddings; items are ranked by cosine
similarity to it through a faiss index (exact by default). This is the recommendation half of "Do We
Really Need Specialization? Evaluating Generalist Text Embeddings for Zero-Shot Recommendation and
Search" (RecSys 2025), with the same optional PCA compression fitted on the item embeddings.

Weights: the item ``a`` steps before the most recent one weighs ``decay ** a`` (``decay = 1``: the plain
mean; smaller values favour recent items).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recbench.embeddings.index import PCA, IndexFactory, recall_vs_exact
from recbench.embeddings.text import DEFAULT_ENCODER, item_text_embeddings


class TextZeroShot(nn.Module):
    """Args:
    num_items: number of items (rows of ``item_text``).
    item_text: the dataset's item text (index = item index).
    template: ``str.format`` template over the item-text columns (e.g. ``"{title}"``).
    encoder: a ``conf/encoder`` name or a sentence-transformers model name or path (items are encoded
        in the symmetric role: E5's ``query:`` prefix).
    decay: recency weight per step back in the history, in (0, 1].
    max_len: history items the user vector averages (the datamodule serves the latest ``max_len``).
    pca_dim: PCA to this many dimensions fitted on the item embeddings (None: off).
    index: faiss index; approximate kinds rank only their top ``search_depth`` items per user.
    search_depth: items an approximate index returns per user (the rest rank last).
    """

    def __init__(
        self,
        num_items: int,
        item_text: pd.DataFrame,
        template: str = "{title}",
        encoder: str = DEFAULT_ENCODER,
        decay: float = 1.0,
        max_len: int = 50,
        pca_dim: int | None = None,
        index: IndexFactory | None = None,
        search_depth: int = 100,
        batch_size: int = 64,
        cache_dir: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if len(item_text) != num_items:
            raise ValueError(f"item_text has {len(item_text)} rows for {num_items} items")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"model.net.decay must be in (0, 1], got {decay}")
        self.decay, self.max_len, self.search_depth = decay, max_len, search_depth
        emb = item_text_embeddings(item_text, template, encoder, batch_size, cache_dir, device)
        self.pca = PCA(pca_dim).fit(emb) if pca_dim else None
        if self.pca is not None:
            emb = self.pca.transform(emb)
        self.factory = index or IndexFactory()
        self.index = self.factory.build(emb)
        # Row 0 is the padding token's (zero) vector: token t = item t - 1, as in every recbench net.
        padded = np.concatenate([np.zeros((1, emb.shape[1]), np.float32), self.index.vectors])
        self.table: torch.Tensor
        self.register_buffer("table", torch.from_numpy(padded), persistent=False)
        self._overlap: dict[int, list[float]] = {}

    def item_embeddings(self) -> torch.Tensor:
        return self.table[1:]  # (I, D)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded history tokens -> (B, L, D); every position holds the user vector of the
        whole history (the recipe reads the last one)."""
        e = self.table[tokens]  # (B, L, D)
        steps_back = torch.arange(tokens.shape[1] - 1, -1, -1, device=tokens.device, dtype=torch.float32)
        w = (self.decay**steps_back).unsqueeze(0) * (tokens != 0).float()  # (B, L)
        user = (w.unsqueeze(-1) * e).sum(1) / w.sum(1, keepdim=True).clamp_min(1e-12)  # (B, D)
        return F.normalize(user, dim=-1).unsqueeze(1).expand(-1, tokens.shape[1], -1)

    def score_items(self, user: torch.Tensor) -> torch.Tensor:
        """(B, D) user vectors -> (B, I) scores. Exact index: every cosine (what ``IndexFlatIP`` ranks
        by). Approximate index: the index's top ``search_depth`` items keep their scores, all others get
        -inf (so a target it missed ranks last), and its overlap with the exact top-k is recorded."""
        exact = user @ self.item_embeddings().T  # (B, I)
        if self.index.exact:
            return exact
        depth = min(self.search_depth, exact.shape[1])
        scores, ids = self.index.search(user.detach().cpu().numpy(), depth)
        out = torch.full_like(exact, float("-inf"))
        ok = torch.from_numpy(ids >= 0)
        rows = torch.arange(len(ids)).unsqueeze(1).expand_as(ok)[ok]
        out[rows.to(exact.device), torch.from_numpy(ids)[ok].to(exact.device)] = torch.from_numpy(scores)[
            ok
        ].to(exact.device, exact.dtype)
        exact_ids = exact.topk(depth, dim=1).indices.cpu().numpy()
        for k in sorted({10, depth}):
            if k <= depth:
                self._overlap.setdefault(k, []).append(recall_vs_exact(ids, exact_ids, k) * len(ids))
                self._overlap.setdefault(-k, []).append(float(len(ids)))
        return out

    def reset_index_stats(self) -> None:
        self._overlap = {}

    def index_info(self) -> dict[str, Any]:
        recall = None
        if not self.index.exact and self._overlap:
            recall = {
                f"recall@{k}": sum(v) / sum(self._overlap[-k]) for k, v in self._overlap.items() if k > 0
            }
        described = self.factory.describe()
        return {
            "kind": described["kind"],
            "params": {k: v for k, v in described.items() if k not in ("kind", "metric")},
            "exact": self.index.exact,
            "recall_vs_exact": recall,
        }
