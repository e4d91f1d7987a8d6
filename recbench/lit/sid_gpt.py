"""The recipe of the decoder-only semantic-ID model (:mod:`recbench.models.sid_gpt`): dense next-token
training over the flattened code tuples of each training window, evaluation by the same constrained beam
search, metrics and diagnostics as TIGER's (:class:`recbench.lit.generative.GenerativeModule`).

Training batches are the sequential datamodule's (``inputs`` and the next items ``targets``, left-padded):
the window's items are ``inputs`` followed by the last target, and every code token after the window's
first is a target, predicted from everything before it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recbench.data.datamodule import TrainBatch
from recbench.lit.generative import GenerativeModule
from recbench.models.sid_gpt import PAD, IncrementalDecoder, SemanticIdGPT


class SemanticIdGPTModule(GenerativeModule):
    net: SemanticIdGPT  # type: ignore[assignment]  # the recipe's network, in place of TIGER

    def _codes(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Item tokens (B, L) (item index + 1, 0 = pad) -> codes (B, L, C) and the real-item mask."""
        return self.item_codes[(items - 1).clamp(min=0)], items != PAD

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:  # type: ignore[override]
        window = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1)  # (B, L + 1) items
        tokens, pos, level, real = self.net.flatten(*self._codes(window))
        hidden = self.net(tokens, pos, level, real)  # (B, S, D)
        supervised = real[:, 1:] & real[:, :-1]  # a token with a real predecessor
        loss = self.loss(hidden[:, :-1][supervised], tokens[:, 1:][supervised], self.net.output_embeddings())
        self.log("train/loss", loss, prog_bar=True, batch_size=int(supervised.sum()))
        return loss

    def decoder(self, users: torch.Tensor, inputs: torch.Tensor) -> IncrementalDecoder:
        """The history encoded once (its keys/values kept), then one token per beam and step."""
        return IncrementalDecoder(self.net, self.net.context(*self._codes(inputs)))

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """(B, I) log-probability of every item's tuple after each history (teacher forcing, one full
        forward per (user, item)): the brute-force reference beam search must match."""
        num_items, c = self.item_codes.shape
        out = torch.empty(len(users), num_items)
        for row in range(len(users)):
            hist = inputs[row : row + 1].expand(num_items, -1)
            window = torch.cat([hist, torch.arange(1, num_items + 1)[:, None]], dim=1)
            tokens, pos, level, real = self.net.flatten(*self._codes(window))
            logp = F.log_softmax(
                self.net(tokens, pos, level, real).float() @ self.net.output_embeddings().T, -1
            )
            last = logp[:, -c - 1 : -1]  # the positions that predict the candidate's codes
            out[row] = last.gather(2, tokens[:, -c:, None])[..., 0].sum(1)
        return out
