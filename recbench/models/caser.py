"""Caser: personalized top-N sequential recommendation via convolutional sequence embedding (Tang & Wang,
WSDM 2018, arXiv:1809.07426).

The embeddings of the latest ``window`` items form an image (window x D). Vertical filters (window x 1)
take weighted sums of its rows; horizontal filters of every height h = 1..window slide over its rows and
are max-pooled, catching union-level and skip patterns. Both go through a dense layer to the prediction
vector, scored against the tied item embeddings (RecBole's Caser).

Supervision is dense, as for the other sequence models: the window ending at each position predicts the
next item, computed for all positions in one pass (the windows are unfolded from the left-padded sequence).
Difference from the paper: no per-user embedding. The protocol scores users by their history alone, as
every other sequential model here; a per-user vector would be fitted without the validation item.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Caser(nn.Module):
    """Args (RecBole 1.2's sizes, the paper's window):
    num_items: number of real items (token 0 is padding, item i is token i + 1).
    max_len: longest history the datamodule passes.
    window: items per convolution image (the paper's L = 5; RecBole convolves its whole history, 50: one
        epoch on the synthetic set took 68 s instead of 0.5 s, 50 convolution heights at every position).
    embedding_size: item embedding width (RecBole: 64).
    n_v: vertical filters (RecBole: 4). n_h: horizontal filters per height (RecBole: 16).
    dropout: dropout before the dense layer (RecBole: 0.4).
    """

    def __init__(
        self,
        num_items: int,
        max_len: int = 50,
        window: int = 5,
        embedding_size: int = 64,
        n_v: int = 4,
        n_h: int = 16,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        if not 1 <= window <= max_len:
            raise ValueError(f"model.net.window must be in 1..max_len={max_len}, got {window}")
        self.num_items, self.max_len, self.window = num_items, max_len, window
        self.item_emb = nn.Embedding(num_items + 1, embedding_size, padding_idx=0)
        self.vertical = nn.Conv2d(1, n_v, (window, 1))
        self.horizontal = nn.ModuleList(nn.Conv2d(1, n_h, (h, embedding_size)) for h in range(1, window + 1))
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(n_v * embedding_size + n_h * window, embedding_size)
        nn.init.normal_(self.item_emb.weight, std=1.0 / embedding_size)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) left-padded -> (B, T, D): position t encodes the window of items ending at t."""
        b, t = tokens.shape
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len {self.max_len}")
        w = self.window
        windows = F.pad(tokens, (w - 1, 0)).unfold(1, w, 1)  # (B, T, W): items t-W+1 .. t
        image = self.item_emb(windows).reshape(b * t, 1, w, -1)  # (BT, 1, W, D)
        v = self.vertical(image).reshape(b * t, -1)  # (BT, n_v * D)
        h = [F.relu(conv(image)).squeeze(3).amax(dim=2) for conv in self.horizontal]  # each (BT, n_h)
        z = F.relu(self.fc(self.drop(torch.cat([v, *h], dim=1))))  # (BT, D)
        return z.reshape(b, t, -1)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight[1:]
