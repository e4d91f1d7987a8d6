"""GRU4Rec: session-based recommendations with recurrent neural networks (Hidasi et al., ICLR 2016,
arXiv:1511.06939).

A GRU reads the user's items oldest first; its state after item t, projected to the embedding width,
scores every item as the next one against the item embeddings (tied input and output, as RecBole's
GRU4Rec). Trained like SASRec, by default with full-softmax cross-entropy at every position: Klenitskiy &
Vasilev (RecSys 2023) show that this, not the architecture, closes most of GRU4Rec's gap to Transformers.

Batches are left-padded. A GRU is not indifferent to leading padding (its biases move the state even on a
zero input), so each row is rotated to put its real items first: a history encodes the same whatever
padding surrounds it, in training and at evaluation. The state after a real item never depends on the
trailing padding (the GRU reads forwards), so the rotated batch runs through the GRU as it is and the
padding's outputs are zeroed. ``packed=True`` packs each row to its real items instead (the same values up
to rounding): on a CPU, torch's packed GRU slices its input once per time step and the backward of each
slice fills a zero tensor the size of the whole batch, which is O(L²) work: 61% of a step on ML-1M
(200 steps), a 5.4 s step against 1.3 s unpacked (1 thread, machine shared).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class GRU4Rec(nn.Module):
    """Args (RecBole 1.2's defaults):
    num_items: number of real items (token 0 is padding, item i is token i + 1).
    max_len: longest history the model reads (the datamodule cuts histories to it).
    embedding_size: item embedding width (RecBole: 64).
    hidden_size: GRU state width (RecBole: 128).
    num_layers: stacked GRU layers (RecBole: 1).
    dropout: dropout on the input embeddings (RecBole: 0.3).
    packed: run the GRU on packed sequences (real items only) rather than on the rotated batch; the same
        outputs up to rounding, far slower to train on a CPU (rows made before 2026-12-03 ran packed).
    """

    def __init__(
        self,
        num_items: int,
        max_len: int = 50,
        embedding_size: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.3,
        packed: bool = False,
    ) -> None:
        super().__init__()
        self.num_items, self.max_len, self.packed = num_items, max_len, packed
        self.item_emb = nn.Embedding(num_items + 1, embedding_size, padding_idx=0)
        self.emb_drop = nn.Dropout(dropout)
        self.gru = nn.GRU(embedding_size, hidden_size, num_layers=num_layers, batch_first=True, bias=False)
        self.proj = nn.Linear(hidden_size, embedding_size)
        nn.init.xavier_normal_(self.item_emb.weight)  # RecBole's initialisation
        for weight in self.gru.parameters():
            nn.init.xavier_uniform_(weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) left-padded item tokens -> hidden states (B, L, E); padding positions are 0."""
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        lengths = (tokens != 0).sum(1)  # (B,)
        pad = length - lengths  # leading padding of each row
        steps = torch.arange(length, device=tokens.device)
        # Rotate each row so that its items come first (right padding), run the GRU, rotate back.
        to_right = (steps[None] + pad[:, None]) % length  # (B, L)
        x = self.emb_drop(self.item_emb(tokens.gather(1, to_right)))  # (B, L, E)
        if self.packed:
            seqs = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.gru(seqs)[0], batch_first=True, total_length=length)
        else:
            out, _ = self.gru(x)  # (B, L, H), right-padded: outputs past a row's items are discarded below
        to_left = (steps[None] - pad[:, None]) % length
        hidden = self.proj(out.gather(1, to_left[..., None].expand(-1, -1, out.shape[-1])))  # (B, L, E)
        return hidden * (tokens != 0)[..., None]

    def item_embeddings(self) -> torch.Tensor:
        """(num_items, E) output embeddings, tied to the input ones (padding row excluded)."""
        return self.item_emb.weight[1:]
