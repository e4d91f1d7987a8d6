"""BERT4Rec: sequential recommendation with bidirectional encoder representations from Transformer
(Sun et al., CIKM 2019, arXiv:1904.06690).

A bidirectional Transformer over the item sequence, trained by the cloze task (:mod:`recbench.lit.cloze`):
some items are replaced by a mask token and predicted from both sides. At evaluation a mask token is
appended after the history and its output scores the next item.

As RecBole's BERT4Rec: post-LayerNorm blocks (BERT's), GELU, a dense + GELU + LayerNorm output head, scores
by the dot product with the tied item embeddings plus a per-item bias. The bias is carried as one more
dimension (hidden states end in a constant 1, item embeddings in their bias), so the recipe's
``hidden @ item_embeddings().T`` is the full score. Positions are counted from the end: the last token
(the appended mask at evaluation, the last training item in training) always has the last position.
"""

from __future__ import annotations

import torch
from torch import nn

from recbench.models.sasrec import Block, SASRec


class BERT4Rec(nn.Module):
    """Args (RecBole 1.2's defaults):
    num_items: number of real items (token 0 is padding, item i is token i + 1, num_items + 1 is the mask).
    max_len: longest history (the model reads max_len + 1 tokens: the history and the mask after it).
    hidden_size, num_layers, num_heads, ffn_size: Transformer sizes (RecBole: 64, 2, 2, 256).
    dropout, attn_dropout: hidden and attention dropout (RecBole: 0.2, 0.2).
    init_std: std of the normal initialisation (RecBole: 0.02).
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
    ) -> None:
        super().__init__()
        self.num_items, self.max_len = num_items, max_len
        self.mask_token = num_items + 1
        self.item_emb = nn.Embedding(num_items + 2, hidden_size, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len + 1, hidden_size)
        self.ln_in = nn.LayerNorm(hidden_size)
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden_size, num_heads, ffn_size, dropout, attn_dropout, norm="post")
            for _ in range(num_layers)
        )
        self.head = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size))
        self.item_bias = nn.Parameter(torch.zeros(num_items))
        self.apply(lambda m: SASRec._init(m, init_std))  # SASRec's: normal weights, zero biases and padding

    reads_last_only = True  # forward(tokens, last_only=True): the last position alone, for evaluation

    def forward(self, tokens: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """tokens (B, L) left-padded (items, mask tokens) -> (B, L, D + 1) output states; ``last_only``: the
        last position's alone, (B, 1, D + 1) (evaluation reads the mask appended there): the final block
        attends from that position only and the head runs on it alone, the same state up to rounding."""
        length = tokens.shape[1]
        if length > self.max_len + 1:
            raise ValueError(f"sequence length {length} exceeds max_len + 1 = {self.max_len + 1}")
        valid = tokens != 0
        positions = torch.arange(self.max_len + 1 - length, self.max_len + 1, device=tokens.device)
        x = self.emb_drop(self.ln_in(self.item_emb(tokens) + self.pos_emb(positions)[None]))  # (B, L, D)
        # Every real token sees every real token; padding sees only itself (its rows are never read).
        eye = torch.eye(length, dtype=torch.bool, device=tokens.device)
        allowed = (valid[:, None, :] | eye)[:, None]  # (B, 1, L, L)
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, last_only and i == len(self.blocks) - 1)
        h = self.head(x)
        return torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)

    def item_embeddings(self) -> torch.Tensor:
        """(num_items, D + 1): the tied item embeddings (padding and mask rows excluded) and the bias."""
        return torch.cat([self.item_emb.weight[1 : self.num_items + 1], self.item_bias[:, None]], dim=1)
