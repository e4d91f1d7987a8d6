"""Batches for encoder-decoder (generative) next-item models: one training sample per prefix.

A non-causal encoder (TIGER's T5) cannot share one forward pass across the positions of a sequence the
way a causal SASRec does, so every training target becomes its own sample: the ``max_len`` items before it
(history) and the item itself (target) — "all prefixes of the training sequence" (TIGER §4). Training
targets are the items at positions ``offsets[u] + 1 .. train_end[u] - 1``: the validation and test items
are never training targets. Samples are batched by history length (bucketed, seeded) to keep padding low.
Evaluation batches are those of :class:`SequentialDataModule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recbench.data.datamodule import SequentialDataModule, left_pad


@dataclass
class PrefixBatch:
    users: torch.Tensor  # (B,) user indices
    inputs: torch.Tensor  # (B, L) history item tokens (item index + 1), left-padded with 0
    targets: torch.Tensor  # (B,) target item index (0-based)


def prefix_samples(
    offsets: np.ndarray, train_end: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, target position, history length) of every training prefix."""
    begins = offsets[:-1]
    counts = np.maximum(train_end - begins - 1, 0)  # targets per user: every training item but the first
    users = np.repeat(np.arange(len(begins)), counts)
    first = np.repeat(begins + 1, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = first + within
    hist = np.minimum(pos - begins[users], max_len)
    return users.astype(np.int64), pos.astype(np.int64), hist.astype(np.int64)


class PrefixDataModule(SequentialDataModule):
    """:class:`SequentialDataModule` whose training samples are single prefixes (see module docstring).

    ``starts``/``sizes`` are reused by the bucketing sampler: ``sizes`` = history length of each sample.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sample_users, self.sample_pos, self.sizes = prefix_samples(
            self.ds.offsets, self.split.train_end, self.max_len
        )
        self.starts = self.sample_pos - self.sizes

    @property
    def num_train_targets(self) -> int:
        return len(self.sample_pos)

    def collate_train(self, idx: list[int]) -> PrefixBatch:  # type: ignore[override]
        items = self.ds.items
        pos, size = self.sample_pos[idx], self.sizes[idx]
        return PrefixBatch(
            users=torch.from_numpy(self.sample_users[idx]),
            inputs=left_pad([items[p - n : p] + 1 for p, n in zip(pos, size, strict=True)]),
            targets=torch.from_numpy(items[pos].astype(np.int64)),
        )
