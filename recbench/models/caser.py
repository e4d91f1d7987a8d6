"""Caser: personalized top-N sequential recommendation via convolutional sequence embedding (Tang & Wang,
WSDM 2018, arXiv:1809.07426).

The embeddings of the latest ``window`` items form an image (window x D). Vertical filters (window x 1)
take weighted sums of its rows; horizontal filters of every height h = 1..window slide over its rows and
are max-pooled, catching union-level and skip patterns. Both go through a dense layer to the prediction
vector, scored against the tied item embeddings (RecBole's Caser).

Supervision is dense, as for the other sequence models: the window ending at each position predicts the
next item, computed for all positions in one pass. Neighbouring windows share W - 1 items, so the filters
are applied once per sequence position and combined per window by shifted sums and a sliding max: the
convolutions' values (up to rounding) at a fifth of the work for W = 5. ``images=True`` builds each
position's W x D image and runs the convolutions on it instead (rows made before 2026-12-03; a Caser step
on ML-1M 2.5 s, 40% of it in the convolutions' backward).
Difference from the paper: no per-user embedding. The protocol scores users by their history alone, as
every other sequential model here; a per-user vector would be fitted without the validation item.
"""

from __future__ import annotations

from typing import cast

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
    images: convolve one W x D image per position (torch's Conv2d) instead of sharing the filters' work
        between overlapping windows; the same values up to rounding, slower.
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
        images: bool = False,
    ) -> None:
        super().__init__()
        if not 1 <= window <= max_len:
            raise ValueError(f"model.net.window must be in 1..max_len={max_len}, got {window}")
        self.num_items, self.max_len, self.window, self.images = num_items, max_len, window, images
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
        features = self._image_features(tokens) if self.images else self._shared_features(tokens)
        z = F.relu(self.fc(self.drop(features)))  # (BT, D)
        return z.reshape(b, t, -1)

    def _image_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """(BT, n_v * D + n_h * W): each position's image through the convolutions."""
        b, t = tokens.shape
        w = self.window
        windows = F.pad(tokens, (w - 1, 0)).unfold(1, w, 1)  # (B, T, W): items t-W+1 .. t
        image = self.item_emb(windows).reshape(b * t, 1, w, -1)  # (BT, 1, W, D)
        v = self.vertical(image).reshape(b * t, -1)  # (BT, n_v * D)
        h = [F.relu(conv(image)).squeeze(3).amax(dim=2) for conv in self.horizontal]  # each (BT, n_h)
        return torch.cat([v, *h], dim=1)

    def _shared_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`_image_features`, each filter row applied once per sequence position."""
        b, t = tokens.shape
        w = self.window
        e = self.item_emb(F.pad(tokens, (w - 1, 0)))  # (B, T + W - 1, D): window t is rows t .. t + W - 1
        d = e.shape[-1]
        # Vertical: v[t, f] = sum_i weight[f, i] * e[t + i] + bias[f].
        wv = self.vertical.weight.reshape(self.vertical.out_channels, w)  # (n_v, W)
        v = e.unfold(1, w, 1) @ wv.T + self.vertical.bias  # (B, T, D, n_v)
        v = v.transpose(2, 3).reshape(b * t, -1)  # (BT, n_v * D), as the convolution's (n_v, D) output
        # Horizontal, height h: one matmul gives each filter row i at every position; the filter at start s
        # sums rows i at positions s + i (a diagonal of the unfolded product), and window t max-pools the
        # starts t .. t + W - h.
        h = []
        for height, module in enumerate(self.horizontal, start=1):
            conv = cast(nn.Conv2d, module)
            # (h * n_h, D): row i of filter f is row i * n_h + f
            rows = conv.weight[:, 0].transpose(0, 1).reshape(-1, d)
            z = (e @ rows.T).unflatten(-1, (height, -1))  # (B, T + W - 1, h, n_h)
            # unfold: (B, starts, h, n_h, h); the diagonal pairs row i with position s + i.
            out = z.unfold(1, height, 1).diagonal(dim1=2, dim2=4).sum(-1) + conv.bias  # (B, starts, n_h)
            pooled = F.relu(out).unfold(1, w - height + 1, 1).amax(dim=-1)  # (B, T, n_h)
            h.append(pooled.reshape(b * t, -1))
        return torch.cat([v, *h], dim=1)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight[1:]
