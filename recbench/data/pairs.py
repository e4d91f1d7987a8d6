"""Training batches over (user, item) interactions, for collaborative-filtering models.

Evaluation is the sequential datamodule's, unchanged: the same users, targets, full-ranking batches and
sampled-negative diagnostic, so a CF row and a sequential row on one board rank the same cases. Only
training differs: instead of sequences, a CF model learns from the training matrix (each user's items
before its validation target, repeats counted once, :func:`recbench.inputs.train_matrix`), served as

* ``sample: pairs`` — every training (user, item) pair once per epoch in a seeded random order, with
  ``num_negatives`` items drawn uniformly among those the user has *not* interacted with in training
  (:class:`PairBatch`: BPR-MF, LightGCN, BUIR, DirectAU);
* ``sample: users`` — every user with training items once per epoch, as a row of the matrix
  (:class:`UserBatch`: Mult-VAE).

Both are reproducible from ``seed`` and the number of passes already drawn, which checkpoints keep, so a
resumed run draws the epoch an unbroken run would have drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader, IterableDataset

from recbench.data.datamodule import SequentialDataModule, _rank_and_world
from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split
from recbench.data.sampled import NEGATIVES
from recbench.inputs import RunContext, train_matrix

SAMPLES = ("pairs", "users")


@dataclass
class PairBatch:
    users: torch.Tensor  # (B,) user indices
    items: torch.Tensor  # (B,) a training item of each user (0-based)
    negatives: torch.Tensor  # (B, K) items each user has no training interaction with (0-based)


@dataclass
class UserBatch:
    """Users and their training items, as (batch row, item) pairs: the matrix rows, sparse."""

    users: torch.Tensor  # (B,) user indices
    row_index: torch.Tensor  # (N,) int64: the batch row of each training (user, item) pair
    item_index: torch.Tensor  # (N,) int64: its item (0-based)
    num_items: int

    @property
    def rows(self) -> torch.Tensor:
        """(B, I) float32: 1 where the user has the item in training."""
        dense = torch.zeros(len(self.users), self.num_items)
        dense[self.row_index, self.item_index] = 1.0
        return dense

    @classmethod
    def from_rows(cls, users: torch.Tensor, rows: torch.Tensor) -> UserBatch:
        row_index, item_index = rows.nonzero(as_tuple=True)
        return cls(users, row_index, item_index, rows.shape[1])


def draw_negatives(
    keys: np.ndarray, num_items: int, users: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """(len(users), k) items drawn uniformly, with replacement, among those each user has no training
    interaction with (rejection sampling: a draw that hits a training item is redrawn). ``keys``:
    :func:`sorted_keys` of the training matrix."""
    out = rng.integers(num_items, size=(len(users), k))
    todo = np.ones(out.shape, dtype=bool)
    rows = np.broadcast_to(users[:, None], out.shape)
    while True:
        probe = rows[todo].astype(np.int64) * num_items + out[todo]
        at = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
        hit = keys[at] == probe if len(keys) else np.zeros(len(probe), dtype=bool)
        idx = np.flatnonzero(todo)
        todo[:] = False
        todo.flat[idx[hit]] = True
        if not todo.any():
            return out
        out[todo] = rng.integers(num_items, size=int(todo.sum()))


def sorted_keys(matrix: sp.csr_matrix) -> np.ndarray:
    """user * num_items + item of every stored entry, ascending (CSR rows in order, indices sorted)."""
    m = matrix if matrix.has_sorted_indices else matrix.sorted_indices()
    users = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return users * m.shape[1] + m.indices.astype(np.int64)


class _Epochs(IterableDataset):
    """Collated batches of one epoch, reshuffled each pass, every ``world``-th batch on each rank (all
    ranks take the same number of steps: the last ``len % world`` batches are dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int, collate: Any) -> None:
        self.n, self.batch_size, self.seed, self.collate = n, batch_size, seed, collate
        self.epoch = 0

    def __len__(self) -> int:
        return ((self.n + self.batch_size - 1) // self.batch_size) // _rank_and_world()[1]

    def __iter__(self) -> Iterator[Any]:
        rank, world = _rank_and_world()
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(self.n)
        starts = list(range(0, self.n, self.batch_size))[: len(self) * world]
        for s in starts[rank::world]:
            yield self.collate(order[s : s + self.batch_size], rng)


class InteractionDataModule(SequentialDataModule):
    """Args (besides the evaluation ones of :class:`SequentialDataModule`):
    sample: ``pairs`` or ``users`` (see the module docstring).
    batch_size: pairs (or users) per training batch.
    num_negatives: negatives per pair (``pairs`` only).
    max_len: last history items passed as ``EvalBatch.inputs``; CF models read the whole history
        before the target from ``EvalBatch.history_items`` or their user embedding, never this.
    """

    def __init__(
        self,
        dataset: SequenceDataset,
        split: Split,
        sample: str = "pairs",
        batch_size: int = 2048,
        num_negatives: int = 1,
        max_len: int = 50,
        eval_batch_size: int = 512,
        score_budget: int = 1 << 25,
        seed: int = 0,
        num_workers: int = 0,
        sampled_negatives: int = NEGATIVES,
    ) -> None:
        if sample not in SAMPLES:
            raise ValueError(f"datamodule.sample must be one of {SAMPLES}, got {sample!r}")
        if num_negatives < 1:
            raise ValueError(f"datamodule.num_negatives must be >= 1, got {num_negatives}")
        if batch_size < 1:
            raise ValueError(f"datamodule.batch_size must be >= 1, got {batch_size}")
        super().__init__(
            dataset,
            split,
            max_len=max_len,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            score_budget=score_budget,
            seed=seed,
            num_workers=num_workers,
            sampled_negatives=sampled_negatives,
        )
        self.sample, self.num_negatives = sample, num_negatives
        self.matrix = train_matrix(RunContext(dataset, split, None))
        coo = self.matrix.tocoo()
        self.pair_users, self.pair_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        self.active_users = np.flatnonzero(np.diff(self.matrix.indptr))  # users with training items
        if self.matrix.shape[1] - np.diff(self.matrix.indptr).max(initial=0) < 1:
            raise ValueError(f"{dataset.name}: a user has every item in training: no negative to draw")
        self.keys = sorted_keys(self.matrix)
        self._epochs: _Epochs | None = None

    @property
    def num_train_targets(self) -> int:
        """Training pairs (``pairs``) or users with training items (``users``) per epoch."""
        return len(self.pair_users) if self.sample == "pairs" else len(self.active_users)

    def collate_pairs(self, idx: np.ndarray, rng: np.random.Generator) -> PairBatch:
        users = self.pair_users[idx]
        return PairBatch(
            users=torch.from_numpy(users),
            items=torch.from_numpy(self.pair_items[idx]),
            negatives=torch.from_numpy(
                draw_negatives(self.keys, self.matrix.shape[1], users, self.num_negatives, rng)
            ),
        )

    def collate_users(self, idx: np.ndarray, rng: np.random.Generator) -> UserBatch:
        users = self.active_users[idx]
        rows = self.matrix[users]  # CSR, binary
        row_index = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(rows.indptr))
        return UserBatch(
            users=torch.from_numpy(users),
            row_index=torch.from_numpy(row_index),
            item_index=torch.from_numpy(rows.indices.astype(np.int64)),
            num_items=rows.shape[1],
        )

    def train_dataloader(self) -> DataLoader:
        if self.num_workers:
            raise ValueError("datamodule.num_workers must be 0: batches are collated in the main process")
        collate = self.collate_pairs if self.sample == "pairs" else self.collate_users
        self._epochs = _Epochs(self.num_train_targets, self.batch_size, self.seed, collate)
        self._epochs.epoch = self._train_passes
        return DataLoader(self._epochs, batch_size=None)

    def state_dict(self) -> dict[str, int]:
        return {"train_passes": self._epochs.epoch if self._epochs else self._train_passes}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return
        self._train_passes = int(state_dict["train_passes"])
        if self._epochs is not None:
            self._epochs.epoch = self._train_passes
