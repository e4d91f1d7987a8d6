"""Evaluation protocols: how a dataset becomes training sequences and evaluation cases.

``leave_one_out`` is the protocol of SASRec, S3-Rec, P5 and TIGER: per user, in chronological order,
the last item is the test target, the second-to-last the validation target, and everything before is
training data. The validation item is never a training target (REPRODUCTION_NOTES trap 5); the test
case's history does include it, as in all those papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recbench.data.dataset import SequenceDataset


@dataclass(frozen=True)
class EvalCases:
    """One evaluation case per user: the target sits at ``dataset.items[target_pos]``; the user's history
    is ``dataset.items[offsets[user]:target_pos]`` (everything before the target, oldest first)."""

    users: np.ndarray  # (E,) int64 user indices
    target_pos: np.ndarray  # (E,) int64 positions in the flat items array

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Split:
    train_end: np.ndarray  # (U,) int64: user u trains on items[offsets[u]:train_end[u]]
    val: EvalCases
    test: EvalCases
    dropped_users: int  # users too short for the protocol (fewer than 3 interactions)


class LeaveOneOut:
    """Last item = test, second-to-last = validation, the rest = training (all prefixes are examples).

    Args:
        mask_history: remove the user's past items from the ranking before scoring. Default False, the
            protocol of P5 and TIGER: P5's evaluation (and OpenP5's) decodes over the whole item set with
            no history filter, and TIGER follows P5's data and evaluation setup (Rajput et al. 2023, §4);
            RecBole's full-sort evaluation of sequential models applies no history mask either. Both
            numbers are always computed; this flag picks the headline one.
    """

    name = "leave_one_out"
    version = "1"

    def __init__(self, mask_history: bool = False) -> None:
        self.mask_history = mask_history

    def split(self, ds: SequenceDataset) -> Split:
        lengths = ds.lengths()
        ok = lengths >= 3
        users = np.flatnonzero(ok).astype(np.int64)
        ends = ds.offsets[1:]
        train_end = np.where(ok, ends - 2, ds.offsets[:-1])  # short users contribute nothing
        return Split(
            train_end=train_end.astype(np.int64),
            val=EvalCases(users=users, target_pos=(ends[users] - 2).astype(np.int64)),
            test=EvalCases(users=users, target_pos=(ends[users] - 1).astype(np.int64)),
            dropped_users=int((~ok).sum()),
        )

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "mask_history": self.mask_history}
