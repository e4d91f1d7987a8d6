"""Batches for next-item training and full-ranking evaluation.

Training uses dense supervision: every position of a training sequence predicts the next item, which
covers every prefix of the sequence at the cost of one forward pass. Sequences longer than ``max_len``
targets are cut into consecutive windows so that each training target is predicted exactly once.

Batches are left-padded to the longest sequence *in the batch* and drawn from length buckets, so a batch
of short Amazon sequences costs a short forward pass instead of a padded 50-step one: this is most of
why an epoch here takes seconds where padded-prefix implementations take minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import EvalCases, Split
from recbench.data.sampled import NEGATIVES, VARIANTS, NegativeSampler
from recbench.inputs import RunContext, train_item_counts

PAD = 0  # item index i is token i + 1


@dataclass
class TrainBatch:
    inputs: torch.Tensor  # (B, L) item tokens, left-padded with PAD
    targets: torch.Tensor  # (B, L) next-item tokens, PAD where there is no target


@dataclass
class EvalBatch:
    users: torch.Tensor  # (B,) user indices
    inputs: torch.Tensor  # (B, L) last max_len history tokens, left-padded
    targets: torch.Tensor  # (B,) target item index (0-based)
    history_rows: torch.Tensor  # (H,) batch row of each past interaction (for history masking)
    history_items: torch.Tensor  # (H,) item index (0-based) of each past interaction
    # test batches only: variant ("uniform", "popularity") -> (B, n) sampled negatives (0-based item
    # indices, -1 padding) for the sampled-metrics diagnostic (recbench/data/sampled.py)
    sampled: dict[str, torch.Tensor] = field(default_factory=dict)


def left_pad(rows: list[np.ndarray]) -> torch.Tensor:
    width = max((len(r) for r in rows), default=1) or 1
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        if len(r):
            out[i, width - len(r) :] = r
    return torch.from_numpy(out)


def train_windows(offsets: np.ndarray, train_end: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, n_targets) of each window: inputs items[start:start+n], targets items[start+1:start+1+n]."""
    starts, sizes = [], []
    for begin, end in zip(offsets[:-1].tolist(), train_end.tolist(), strict=True):
        last = end - 1  # position of the last training target
        while last > begin:
            first = max(begin + 1, last - max_len + 1)
            starts.append(first - 1)
            sizes.append(last - first + 1)
            last = first - 1
    return np.asarray(starts, dtype=np.int64), np.asarray(sizes, dtype=np.int64)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length: shuffle, sort within pools of ``pool`` batches, shuffle the batches.
    ``pool=0`` turns bucketing off: consecutive slices of one random permutation (uniform random batches,
    as RecBole and most trainers draw them).

    Seeded; each pass over the data (epoch) uses a fresh, reproducible permutation. Under distributed
    training every rank draws the same permutation and takes every ``world``-th batch; the last
    ``len % world`` batches of an epoch are dropped so that all ranks take the same number of steps.
    """

    def __init__(
        self, lengths: np.ndarray, batch_size: int, seed: int, pool: int = 50, rank: int = 0, world: int = 1
    ) -> None:
        self.lengths, self.batch_size, self.seed, self.pool = lengths, batch_size, seed, pool
        self.rank, self.world = rank, world
        self.epoch = 0

    def __len__(self) -> int:
        return ((len(self.lengths) + self.batch_size - 1) // self.batch_size) // self.world

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.pool if self.pool else len(order)
        batches = []
        for s in range(0, len(order), span):
            chunk = order[s : s + span]
            if self.pool:
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [
                chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)
            ]
        shuffled = rng.permutation(len(batches))[: len(self) * self.world]
        for i in shuffled[self.rank :: self.world]:
            yield batches[i]


class TrainBatches(IterableDataset):
    """Collated training batches from a :class:`BucketBatchSampler`, sharded by distributed rank.

    An iterable dataset rather than a ``batch_sampler``: Lightning leaves it alone under DDP instead of
    trying to wrap the length-bucketing sampler in a ``DistributedSampler``.
    """

    def __init__(
        self,
        sizes: np.ndarray,
        batch_size: int,
        seed: int,
        collate: Callable[[list[int]], TrainBatch],
        pool: int = 50,
    ):
        self.sampler = BucketBatchSampler(sizes, batch_size, seed, pool=pool)
        self.collate = collate

    def __len__(self) -> int:
        self.sampler.rank, self.sampler.world = _rank_and_world()
        return len(self.sampler)

    def __iter__(self) -> Iterator[TrainBatch]:
        self.sampler.rank, self.sampler.world = _rank_and_world()
        return (self.collate(idx) for idx in self.sampler)


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


EVAL_ORDERS = ("length", "given")


class SequentialDataModule(L.LightningDataModule):
    """Serves a :class:`Split` of a :class:`SequenceDataset` to a next-item model.

    Args:
        max_len: history length the model sees (SASRec: 50).
        batch_size: training sequences (windows) per batch.
        eval_batch_size: users per evaluation batch; lowered automatically so that one batch's score
            matrix stays under ``score_budget`` floats whatever the number of items.
        bucket_pool: batches are drawn from length buckets of this many batches (less padding); 0 draws
            uniformly random batches instead.
        eval_order: ``length`` batches the evaluation cases shortest history first, so that a batch is
            padded little (SASRec on Beauty: validation 2.18 s instead of 4.65 s); ``given`` batches them
            in user order, as rows made before 2026-12-02 were. The cases and their metrics are the same; the
            scores differ at float rounding level (a batch's width changes the kernels' summation order).
        sampled_negatives: negatives drawn per test case for the sampled-metrics diagnostic (each variant
            of :data:`recbench.data.sampled.VARIANTS`); 0 draws none. Test batches only.
    """

    def __init__(
        self,
        dataset: SequenceDataset,
        split: Split,
        max_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        score_budget: int = 1 << 25,
        seed: int = 0,
        num_workers: int = 0,
        bucket_pool: int = 50,
        sampled_negatives: int = NEGATIVES,
        eval_order: str = "given",
    ) -> None:
        super().__init__()
        if bucket_pool < 0:
            raise ValueError(f"datamodule.bucket_pool must be >= 0 (0: no bucketing), got {bucket_pool}")
        if eval_order not in EVAL_ORDERS:
            raise ValueError(f"datamodule.eval_order must be one of {EVAL_ORDERS}, got {eval_order!r}")
        self.bucket_pool, self.eval_order = bucket_pool, eval_order
        self.ds, self.split, self.max_len = dataset, split, max_len
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.eval_batch_size = max(1, min(eval_batch_size, score_budget // max(1, dataset.num_items)))
        self.starts, self.sizes = train_windows(dataset.offsets, split.train_end, max_len)
        self._train: TrainBatches | None = None
        self._train_passes = 0  # training passes drawn so far: restored from checkpoints (state_dict)
        self.sampler: NegativeSampler | None = None
        if sampled_negatives:
            counts = train_item_counts(RunContext(dataset, split, None))
            self.sampler = NegativeSampler(dataset.num_items, counts, sampled_negatives)

    @property
    def num_train_targets(self) -> int:
        return int(self.sizes.sum())

    def collate_train(self, idx: list[int]) -> TrainBatch:
        items = self.ds.items
        ins = [items[s : s + n] + 1 for s, n in zip(self.starts[idx], self.sizes[idx], strict=True)]
        outs = [items[s + 1 : s + 1 + n] + 1 for s, n in zip(self.starts[idx], self.sizes[idx], strict=True)]
        return TrainBatch(inputs=left_pad(ins), targets=left_pad(outs))

    def collate_eval(self, cases: EvalCases, idx: list[int], sampled: bool = False) -> EvalBatch:
        users, pos = cases.users[idx], cases.target_pos[idx]
        begins = self.ds.offsets[users]
        items = self.ds.items
        hist = [items[b:p] for b, p in zip(begins, pos, strict=True)]
        rows = np.repeat(np.arange(len(idx)), [len(h) for h in hist])
        negatives = {}
        if sampled and self.sampler is not None:
            # the history and the target: items[begin:pos + 1]
            excluded = [items[b : p + 1] for b, p in zip(begins, pos, strict=True)]
            for variant in VARIANTS:
                drawn = [
                    self.sampler.draw(variant, u, p, e)
                    for u, p, e in zip(users.tolist(), pos.tolist(), excluded, strict=True)
                ]
                negatives[variant] = torch.from_numpy(np.stack(drawn)) if drawn else torch.empty(0, 0)
        return EvalBatch(
            users=torch.from_numpy(users),
            inputs=left_pad([h[-self.max_len :] + 1 for h in hist]),
            targets=torch.from_numpy(items[pos].astype(np.int64)),
            history_rows=torch.from_numpy(rows),
            history_items=torch.from_numpy(np.concatenate(hist).astype(np.int64)),
            sampled=negatives,
        )

    def train_dataloader(self) -> DataLoader:
        if self.num_workers:
            raise ValueError("datamodule.num_workers must be 0: batches are collated in the main process")
        self._train = TrainBatches(
            self.sizes, self.batch_size, self.seed, self.collate_train, pool=self.bucket_pool
        )
        self._train.sampler.epoch = self._train_passes
        return DataLoader(self._train, batch_size=None)

    def state_dict(self) -> dict[str, int]:
        """How many training passes were drawn: a run resumed from a checkpoint draws the permutation of
        the next pass, as the uninterrupted run does (the epoch counter of the trainer is not usable here:
        checkpoints are written after validation, before the epoch is counted as completed)."""
        return {"train_passes": self._train.sampler.epoch if self._train else self._train_passes}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return  # validate/test on a checkpoint: no training pass follows
        self._train_passes = int(state_dict["train_passes"])
        if self._train is not None:
            self._train.sampler.epoch = self._train_passes

    def eval_order_of(self, cases: EvalCases) -> np.ndarray:
        """The order evaluation cases are batched in (``eval_order``): user order, or by the length of
        the history the model sees, shortest first (stable: ties keep user order)."""
        if self.eval_order == "given":
            return np.arange(len(cases))
        lengths = np.minimum(cases.target_pos - self.ds.offsets[cases.users], self.max_len)
        return np.argsort(lengths, kind="stable")

    def _eval_loader(self, cases: EvalCases, sampled: bool = False) -> DataLoader:
        return DataLoader(
            self.eval_order_of(cases).tolist(),
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=lambda idx: self.collate_eval(cases, idx, sampled=sampled),
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split.test, sampled=True)

    def describe_sampled(self) -> dict[str, object] | None:
        """How the test cases' sampled negatives were drawn (None: none were)."""
        return self.sampler.describe() if self.sampler is not None else None
