"""SASRec: Self-Attentive Sequential Recommendation (Kang & McAuley, ICDM 2018, arXiv:1808.09781).

A causal Transformer over the user's item sequence; the hidden state at position t scores every item as
the next one by a dot product with the (tied) item embedding table.

Differences from the paper, each a choice of later reimplementations that is known to help:
* GELU, and ``norm``: ``pre`` (default) LayerNorm blocks with a final LayerNorm (GPT-2 style), or
  ``post``: LayerNorm after each residual sum and on the input embeddings (BERT style, RecBole's SASRec);
* ``positions`` chooses how position embeddings are indexed (batches are left-padded only to their own
  longest sequence either way):
  - ``from_end`` (the paper's: it left-pads every sequence to max_len): the latest item of the *whole
    training window* gets position max_len - 1. Under dense supervision a training target at step t then
    sees its latest item at position max_len - 1 - (n - 1 - t), while at evaluation the latest item is
    always at max_len - 1: the positions a prefix is trained with are not those it is scored with.
  - ``from_start`` (RecBole's: right-padded, positions 0..n-1): the oldest item of the window is at
    position 0, so a prefix is encoded identically in training and at evaluation (for histories up to
    max_len, dense supervision then computes exactly what RecBole's one-example-per-prefix training does).
* ``similarity``: ``dot`` (the paper's) scores an item by hidden . embedding; ``cosine`` L2-normalises both
  and divides by ``temperature``, as the generative-recommenders (HSTU) SASRec baseline whose ML-1M figures
  are the usual reference (temperature 0.05 there; :mod:`recbench.models.scoring`). Scores are logits:
  the loss and the ranking read them as given.
The loss is not part of the network: it is chosen in the config (full-softmax CE by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbench.models.scoring import Similarity, positions_from_start


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(B, L, D) -> (B, L, D); ``last_only``: the latest position's output alone, (B, 1, D)."""
        b, length, d = x.shape  # (B, L, D)
        q, k, v = self.qkv(x).split(d, dim=2)
        if last_only:
            q, allowed = q[:, -1:], allowed[..., -1:, :]
        q = q.reshape(b, q.shape[1], self.num_heads, d // self.num_heads).transpose(1, 2)
        k, v = (t.view(b, length, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, L or 1, D/H)
        return self.proj(y.transpose(1, 2).reshape(b, q.shape[2], d))


class Block(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        ffn_size: int,
        dropout: float,
        attn_dropout: float,
        norm: str = "pre",
    ):
        super().__init__()
        self.norm = norm
        self.ln1 = nn.LayerNorm(hidden_size)
        self.attn = CausalSelfAttention(hidden_size, num_heads, attn_dropout)
        self.ln2 = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, ffn_size), nn.GELU(), nn.Linear(ffn_size, hidden_size), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``last_only``: keys and values from every position, the query, the residual and the FFN at the
        latest one only: (B, 1, D), what evaluation reads from the final block."""
        here = x[:, -1:] if last_only else x
        if self.norm == "post":  # BERT / RecBole: normalise after each residual sum
            x = self.ln1(here + self.drop(self.attn(x, allowed, last_only)))
            return self.ln2(x + self.ffn(x))
        x = here + self.drop(self.attn(self.ln1(x), allowed, last_only))
        return x + self.ffn(self.ln2(x))


class SASRec(nn.Module):
    """Args:
    num_items: number of real items (token 0 is padding, item i is token i + 1).
    max_len: longest history the model reads (paper: 50 for Amazon, 200 for ML-1M).
    hidden_size: embedding and model width (paper: 50; common: 64).
    num_layers: Transformer blocks (paper: 2).
    num_heads: attention heads (paper: 1; common: 2).
    ffn_size: feed-forward width (common: 4 x hidden_size).
    dropout: dropout on embeddings, residual branches and the FFN (paper: 0.5 on Amazon).
    attn_dropout: dropout on attention probabilities.
    init_std: std of the normal initialisation of weights and embeddings.
    positions: ``from_end`` or ``from_start``, how position embeddings are indexed (module docstring).
    norm: ``pre`` or ``post`` LayerNorm placement (module docstring).
    similarity: ``dot`` or ``cosine`` item scoring (module docstring).
    temperature: scores are divided by it (1.0: unchanged).
    """

    def __init__(
        self,
        num_items: int,
        max_len: int = 50,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 2,
        ffn_size: int = 256,
        dropout: float = 0.2,
        attn_dropout: float = 0.2,
        init_std: float = 0.02,
        positions: str = "from_end",
        norm: str = "pre",
        similarity: str = "dot",
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.scoring = Similarity(similarity, temperature)
        self.similarity, self.temperature = similarity, float(temperature)
        if positions not in ("from_end", "from_start"):
            raise ValueError(f"model.net.positions must be 'from_end' or 'from_start', got {positions!r}")
        if norm not in ("pre", "post"):
            raise ValueError(f"model.net.norm must be 'pre' or 'post', got {norm!r}")
        self.num_items, self.max_len, self.positions = num_items, max_len, positions
        self.item_emb = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden_size)
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden_size, num_heads, ffn_size, dropout, attn_dropout, norm) for _ in range(num_layers)
        )
        # pre: the final LayerNorm of pre-LN stacks; post: the LayerNorm on the input embeddings
        self.ln_f = nn.LayerNorm(hidden_size)
        self.norm = norm
        self._table_cache: tuple[tuple[tuple[int, int], ...], torch.Tensor] | None = None
        self.apply(lambda m: self._init(m, init_std))

    @staticmethod
    def _init(module: nn.Module, std: float) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    reads_last_only = True  # forward(tokens, last_only=True): the latest position alone, for evaluation

    def forward(self, tokens: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """tokens (B, L) left-padded item tokens -> hidden states (B, L, D); with ``last_only`` the latest
        position's alone (B, 1, D), its final block computed at that position only (the same numbers up
        to float rounding, at about half the final block's cost)."""
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        valid = tokens != 0  # (B, L)
        if self.positions == "from_end":  # the latest item always gets position max_len - 1
            positions = torch.arange(self.max_len - length, self.max_len, device=tokens.device)[None]
        else:  # the oldest real item gets position 0
            positions = positions_from_start(valid)  # (B, L)
        x = self.embed(tokens) + self.pos_emb(positions)  # (B, L, D)
        x = self.emb_drop(self.ln_f(x) if self.norm == "post" else x)
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        # A real position may attend to earlier real positions; a padding position attends only to itself
        # so that no softmax row is empty (those rows are never read).
        eye = torch.eye(length, dtype=torch.bool, device=tokens.device)
        allowed = ((causal & valid[:, None, :]) | eye)[:, None]  # (B, 1, L, L)
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, last_only and i == len(self.blocks) - 1)
        x = x if self.norm == "post" else self.ln_f(x)
        return self.scoring.queries(x)

    def item_table(self) -> torch.Tensor:
        """(num_items + 1, D) the item vectors, padding row 0 included (and zero): what the input embeds and
        the output scores with (tied). Variants that build items from more than an ID override it."""
        return self.item_emb.weight

    def _table(self) -> torch.Tensor:
        """:meth:`item_table`, built once per state of the weights while evaluating (eval mode, no
        gradients): the variants that build it from text or semantic IDs would otherwise rebuild the whole
        table twice per batch (input and output). A weight updated in place (an optimizer step, a loaded
        checkpoint) or moved changes the key, so the table is never stale; training always rebuilds it."""
        if self.training or torch.is_grad_enabled():
            return self.item_table()
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if self._table_cache is None or self._table_cache[0] != key:
            self._table_cache = (key, self.item_table())
        return self._table_cache[1]

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Input vectors of ``tokens``: rows of :meth:`item_table` (what ``nn.Embedding`` computes for
        plain SASRec, padding row included; variants only override the table)."""
        return F.embedding(tokens, self._table(), padding_idx=0)

    def item_embeddings(self) -> torch.Tensor:
        """(num_items, D) output embeddings, tied to the input ones (padding row excluded); unit length
        under ``similarity=cosine``."""
        return self.scoring.items(self._table()[1:])
