"""The cloze recipe of BERT4Rec (Sun et al., CIKM 2019): hide a fraction of each training sequence behind
a mask token and predict the hidden items from both sides; at evaluation, append a mask token to the
history and rank every item for it.

Training sequences are the datamodule's windows (``inputs`` followed by their last ``target``: every
training item once). Each real item is masked with probability ``mask_prob`` (a sequence where none was
drawn gets its last item masked, so every sequence teaches something), and the loss is the configured one
(full-softmax CE by default, as Petrov & Macdonald's well-trained BERT4Rec) over the masked positions.
The validation item is never part of a training sequence.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from recbench.data.datamodule import EvalBatch, TrainBatch
from recbench.lit.next_item import NextItemModule


def cloze_mask(
    tokens: torch.Tensor, mask_prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, L) bool: which real tokens to hide; at least one per non-empty row."""
    real = tokens != 0
    drawn = (torch.rand(tokens.shape, generator=generator, device=tokens.device) < mask_prob) & real
    last = torch.zeros_like(real)
    last[:, -1] = real[:, -1]  # left-padded: a row's last real token is its last column
    return drawn | (last & ~drawn.any(1, keepdim=True))


class ClozeModule(NextItemModule):
    def __init__(self, *args: Any, mask_prob: float = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0 < mask_prob < 1:
            raise ValueError(f"model.module.mask_prob must be in (0, 1), got {mask_prob}")
        self.mask_prob = mask_prob

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:  # type: ignore[override]
        if not isinstance(batch, TrainBatch):
            raise TypeError("the cloze recipe trains on whole sequences: use datamodule=sequential")
        sequence = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1)  # (B, L + 1) the whole window
        hide = cloze_mask(sequence, self.mask_prob)
        masked = sequence.masked_fill(hide, self.net.mask_token)  # type: ignore[attr-defined]
        hidden = self.net(masked)  # (B, L + 1, D)
        loss = self.loss(hidden[hide], sequence[hide] - 1, self.net.item_embeddings())
        self.log("train/loss", loss, prog_bar=True, batch_size=int(hide.sum()))
        return loss

    def user_vectors(self, batch: EvalBatch) -> torch.Tensor:
        """(B, D + 1): the output at a mask token appended after each history."""
        mask = torch.full_like(batch.inputs[:, :1], self.net.mask_token)  # type: ignore[attr-defined]
        tokens = torch.cat([batch.inputs, mask], dim=1)
        if getattr(self.net, "reads_last_only", False):  # the mask's state computed there alone
            return cast(Any, self.net)(tokens, last_only=True)[:, -1]
        return self.net(tokens)[:, -1]
