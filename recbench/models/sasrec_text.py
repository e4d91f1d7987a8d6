"""SASRec with item text: every item vector (input and tied output) is built from a frozen text embedding.

``mode``:
* ``fused``: item vector = ID embedding + W · text embedding, W a learned projection of the frozen
  sentence-encoder embedding of the item's text (a bias-free linear map, no ID information in it). With
  W = 0 this is plain SASRec, score for score.
* ``text_only``: item vector = W · text embedding + b: no ID embeddings, so an item is what its text says.
  It scores items never seen in training as well as any other (inductive, as UniSRec's and Recformer's
  text-only settings), at the price of items with the same text being the same item to it.

``adaptor`` is how text becomes an item vector: ``linear`` (W above) or ``moe``, UniSRec's parametric
whitening mixture of experts (Hou et al., KDD 2022): k experts ``(x - b_i) W_i``, mixed by a softmax gate
over ``x``, with dropout on the text first. UniSRec's inductive setting is ``text_only`` with ``moe``, its
transductive one ``fused`` with ``moe``; without its multi-domain pre-training (conf/model/unisrec.yaml).

The text embeddings are computed once per (encoder, template, catalogue) and cached
(:func:`recbench.embeddings.text.item_text_embeddings`), optionally reduced by PCA fitted on the
catalogue. The encoder is frozen: only W (and b) and the Transformer are trained. Everything else is SASRec's
(:mod:`recbench.models.sasrec`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from recbench.embeddings.index import PCA
from recbench.embeddings.text import DEFAULT_ENCODER, item_text_embeddings
from recbench.models.sasrec import SASRec

MODES = ("fused", "text_only")
ADAPTORS = ("linear", "moe")


class WhiteningMoE(nn.Module):
    """UniSRec's MoE adaptor: ``sum_i g_i(x) (dropout(x) - b_i) W_i``, ``g = softmax(x W_g)``. The
    gate starts at zero (every expert weighs 1/k), the shifts at zero."""

    def __init__(self, in_dim: int, out_dim: int, experts: int = 8, dropout: float = 0.2, std: float = 0.02):
        super().__init__()
        if experts < 1:
            raise ValueError(f"model.net.experts must be >= 1, got {experts}")
        self.drop = nn.Dropout(dropout)
        self.shift = nn.Parameter(torch.zeros(experts, in_dim))  # b_i
        self.weight = nn.Parameter(torch.randn(experts, in_dim, out_dim) * std)  # W_i
        self.gate = nn.Parameter(torch.zeros(in_dim, experts))  # W_g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim)."""
        g = torch.softmax(x @ self.gate, dim=-1)  # (N, k)
        h = torch.einsum(
            "nkd,kde->nke", self.drop(x)[:, None, :] - self.shift[None], self.weight
        )  # (N, k, out)
        return (g.unsqueeze(-1) * h).sum(1)


class TextSASRec(SASRec):
    """Args (besides SASRec's):
    item_text: the dataset's item text (index = item index).
    mode: ``fused`` (ID + projected text) or ``text_only`` (projected text).
    template: ``str.format`` template over the item-text columns.
    encoder: a ``conf/encoder`` name or a sentence-transformers model name or path.
    pca_dim: PCA of the text embeddings to this many dimensions, fitted on the catalogue (None: off).
    adaptor: ``linear`` or ``moe`` (UniSRec's whitening mixture of experts).
    experts, adaptor_dropout: the MoE adaptor's experts and input dropout (UniSRec: 8, 0.2).
    """

    def __init__(
        self,
        num_items: int,
        item_text: pd.DataFrame,
        mode: str = "fused",
        template: str = "{title}",
        encoder: str = DEFAULT_ENCODER,
        pca_dim: int | None = None,
        adaptor: str = "linear",
        experts: int = 8,
        adaptor_dropout: float = 0.2,
        batch_size: int = 64,
        cache_dir: str | None = None,
        device: str | None = None,
        **sasrec: Any,
    ) -> None:
        super().__init__(num_items, **sasrec)
        if mode not in MODES:
            raise ValueError(f"model.net.mode must be one of {MODES}, got {mode!r}")
        if adaptor not in ADAPTORS:
            raise ValueError(f"model.net.adaptor must be one of {ADAPTORS}, got {adaptor!r}")
        if len(item_text) != num_items:
            raise ValueError(f"item_text has {len(item_text)} rows for {num_items} items")
        self.mode = mode
        emb = item_text_embeddings(item_text, template, encoder, batch_size, cache_dir, device)
        if pca_dim:
            emb = PCA(pca_dim).fit(emb).transform(emb)
        padded = np.concatenate([np.zeros((1, emb.shape[1]), np.float32), emb.astype(np.float32)])
        self.text: torch.Tensor
        self.register_buffer("text", torch.from_numpy(padded), persistent=False)  # (I + 1, T), row 0 zero
        hidden, std = self.item_emb.embedding_dim, float(sasrec.get("init_std", 0.02))
        self.text_proj: nn.Module
        if adaptor == "moe":
            self.text_proj = WhiteningMoE(emb.shape[1], hidden, experts, adaptor_dropout, std)
        else:
            self.text_proj = nn.Linear(emb.shape[1], hidden, bias=mode == "text_only")
            nn.init.normal_(self.text_proj.weight, std=std)
            if self.text_proj.bias is not None:
                nn.init.zeros_(self.text_proj.bias)
        if mode == "text_only":
            del self.item_emb  # no ID embeddings: not a parameter, not counted

    def item_table(self) -> torch.Tensor:
        text = self.text_proj(self.text)  # (I + 1, D)
        text = torch.cat([torch.zeros_like(text[:1]), text[1:]])  # padding stays the zero vector
        return text if self.mode == "text_only" else self.item_emb.weight + text
