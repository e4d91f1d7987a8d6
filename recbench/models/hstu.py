"""HSTU: Hierarchical Sequential Transduction Units (Zhai et al., ICML 2024, "Actions Speak Louder than
Words: Trillion-Parameter Sequential Transducers for Generative Recommendations", arXiv:2402.17152).

A causal stack of HSTU layers over the user's item sequence, scored like SASRec: the hidden state at
position t ranks every item as the next one against the (tied) item embedding table. One layer is

    U, V, Q, K = split(SiLU(LayerNorm(X) W))                       pointwise projection, no bias
    A[i, j]    = SiLU(Q_i . K_j + rab[i - j]) / max_len  for j <= i    pointwise attention, *no softmax*
    Y          = X + W_o Dropout(LayerNorm(A V) * U)                 gated by U, residual

The two LayerNorms have no affine parameters and the second normalises all heads together, as in the
reference implementation (generative-recommenders, research/modeling/sequential/hstu.py, whose
ML-1M configs are the settings of experiment/hstu_ml1m.yaml and hstu_large_ml1m.yaml). Without a softmax
the attention weights do not sum to one, so the output keeps how many and how strongly past items relate
to the query (the paper's argument for pointwise attention in recommendation). They are divided by a
*fixed* length (the reference: its padded length; here max_len), not by the number of keys, which also
makes a real position's output independent of how much left padding surrounds it.

Inputs follow the reference: item embedding x sqrt(D) + a learned absolute position (the oldest item of
the window at 0, as the reference's right-padded sequences), dropout, padding zeroed. The output is
L2-normalised under ``similarity: cosine`` and divided by ``temperature`` (the reference: cosine / 0.05);
``item_embeddings()`` is then unit-length too. There is no final LayerNorm (the reference has none).

Differences from the reference:
* the relative attention bias is its position part only: one learned scalar per distance i - j. The
  reference adds a second term from the bucketed time gap between items (log buckets of seconds); the
  network takes item tokens only (our recipe passes no timestamps, and most of our datasets have none),
  so that term is left out.
* the attention is divided by max_len (200 on ML-1M); the reference divides by its padded length, which
  includes room for 11 generated items (211 there). A constant factor on every score.
The loss is not part of the network: it is chosen in the config (HSTU's: sampled softmax, 128 negatives).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbench.models.scoring import Similarity, positions_from_start

_EPS = 1e-6  # the reference's LayerNorm and L2-norm epsilon


class HSTULayer(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        attention_dim: int,
        linear_dim: int,
        max_len: int,
        dropout: float,
        relative_bias: bool,
    ) -> None:
        super().__init__()
        self.num_heads, self.attention_dim, self.linear_dim = num_heads, attention_dim, linear_dim
        self.max_len = max_len
        self.uvqk = nn.Linear(hidden_size, 2 * num_heads * (linear_dim + attention_dim), bias=False)
        # rab[d]: the bias of a key d steps before the query; causal attention never needs d < 0
        self.rel_bias = nn.Parameter(torch.zeros(max_len)) if relative_bias else None
        self.out = nn.Linear(num_heads * linear_dim, hidden_size)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), allowed (B, 1, L, L) bool: query i may read key j -> (B, L, D)."""
        b, length, d = x.shape
        h, dqk, dv = self.num_heads, self.attention_dim, self.linear_dim
        uvqk = F.silu(self.uvqk(F.layer_norm(x, (d,), eps=_EPS)))
        u, v, q, k = uvqk.split([h * dv, h * dv, h * dqk, h * dqk], dim=-1)
        q, k = (t.view(b, length, h, dqk).transpose(1, 2) for t in (q, k))  # (B, H, L, dqk)
        v = v.view(b, length, h, dv).transpose(1, 2)  # (B, H, L, dv)
        scores = q @ k.transpose(-1, -2)  # (B, H, L, L)
        if self.rel_bias is not None:
            steps = torch.arange(length, device=x.device)
            distance = (steps[:, None] - steps[None, :]).clamp(min=0)  # (L, L); j > i is masked anyway
            scores = scores + self.rel_bias[distance]
        weights = F.silu(scores).masked_fill(~allowed, 0.0) / self.max_len  # (B, H, L, L)
        av = (weights @ v).transpose(1, 2).reshape(b, length, h * dv)  # (B, L, H * dv)
        return x + self.out(self.drop(F.layer_norm(av, (h * dv,), eps=_EPS) * u))


class HSTU(nn.Module):
    """Args:
    num_items: number of real items (token 0 is padding, item i is token i + 1).
    max_len: longest history the model reads; also the attention's fixed normaliser (reference: 200 on
        ML-1M, 50 on Amazon Books).
    hidden_size: item embedding and residual width (reference: 50 on ML-1M).
    num_layers: HSTU layers (reference ML-1M: 2; HSTU-large: 8).
    num_heads: attention heads (reference ML-1M: 1; HSTU-large: 2).
    attention_dim: query/key width per head (reference ML-1M: 50; HSTU-large: 25).
    linear_dim: value/gate width per head (reference ML-1M: 50; HSTU-large: 25).
    dropout: dropout on the input embeddings (reference ML-1M: 0.2).
    linear_dropout: dropout on the gated attention output, before the output projection (0.2).
    relative_bias: learn a bias per query-key distance (the position part of the reference's bias).
    similarity: ``dot`` or ``cosine`` item scoring (module docstring; reference: cosine).
    temperature: scores are divided by it (reference: 0.05; 1.0: unchanged).
    """

    def __init__(
        self,
        num_items: int,
        max_len: int = 200,
        hidden_size: int = 50,
        num_layers: int = 2,
        num_heads: int = 1,
        attention_dim: int = 50,
        linear_dim: int = 50,
        dropout: float = 0.2,
        linear_dropout: float = 0.2,
        relative_bias: bool = True,
        similarity: str = "cosine",
        temperature: float = 0.05,
    ) -> None:
        super().__init__()
        sizes = {
            "max_len": max_len,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "attention_dim": attention_dim,
            "linear_dim": linear_dim,
        }
        for key, value in sizes.items():
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"model.net.{key} must be an integer >= 1, got {value!r}")
        for key, rate in {"dropout": dropout, "linear_dropout": linear_dropout}.items():
            if not 0 <= rate < 1:
                raise ValueError(f"model.net.{key} must be in [0, 1), got {rate!r}")
        self.scoring = Similarity(similarity, temperature, eps=_EPS)
        self.num_items, self.max_len, self.hidden_size = num_items, max_len, hidden_size
        self.similarity, self.temperature = similarity, float(temperature)
        self.item_emb = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden_size)
        self.emb_drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            HSTULayer(
                hidden_size, num_heads, attention_dim, linear_dim, max_len, linear_dropout, relative_bias
            )
            for _ in range(num_layers)
        )
        self._init()

    def _init(self) -> None:
        # The reference's initialisation: embeddings N(0, 0.02) truncated at 2 std, positions Xavier normal,
        # the fused projection N(0, 0.02), the output projection Xavier uniform (bias left at PyTorch's
        # default), the relative bias N(0, 0.02).
        nn.init.trunc_normal_(self.item_emb.weight, std=0.02, a=-0.04, b=0.04)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        nn.init.xavier_normal_(self.pos_emb.weight)
        for layer in self.layers:
            assert isinstance(layer, HSTULayer)
            nn.init.normal_(layer.uvqk.weight, std=0.02)
            nn.init.xavier_uniform_(layer.out.weight)
            if layer.rel_bias is not None:
                nn.init.normal_(layer.rel_bias, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) left-padded item tokens -> hidden states (B, L, D)."""
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        valid = tokens != 0  # (B, L)
        positions = positions_from_start(valid)  # (B, L): left padding is zeroed below, never read
        x = self.item_emb(tokens) * math.sqrt(self.hidden_size) + self.pos_emb(positions)  # (B, L, D)
        x = self.emb_drop(x) * valid[..., None]
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        # Keys at padding are never read. A padding query then reads nothing (no softmax: a row of zeros
        # is harmless) and its output is never read either.
        allowed = (causal & valid[:, None, :])[:, None]  # (B, 1, L, L)
        for layer in self.layers:
            x = layer(x, allowed)
        return self.scoring.queries(x)

    def item_embeddings(self) -> torch.Tensor:
        """(num_items, D) output embeddings, tied to the input ones (padding row excluded); unit length
        under ``similarity=cosine``."""
        return self.scoring.items(self.item_emb.weight[1:])
