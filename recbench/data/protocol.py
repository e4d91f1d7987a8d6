"""Evaluation protocols: how a dataset becomes training sequences and evaluation cases.

``leave_one_out`` is the protocol of SASRec, S3-Rec, P5 and TIGER: per user, in chronological order,
the last item is the test target, the second-to-last the validation target, and everything before is
training data. The validation item is never a training target (docs/protocol.md, rule 5); the test
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


class GlobalTemporal:
    """One global timeline for all users: interactions before ``val_start`` train, the first interaction
    of each user in ``[val_start, test_start)`` is that user's validation target and the first at or after
    ``test_start`` their test target; each target's history is everything the user did before it.

    This is the split that prevents training on the future of evaluation cases (Ji et al., "A critical
    study on data leakage in recommender system offline evaluation", ACM TOIS 2023; Sun, "Take a fresh
    look at recommender systems from an evaluation standpoint", SIGIR 2023), and the one Amazon Reviews
    2023 publishes its timestamp splits with (Hou et al. 2024). Leave-one-out, by contrast, lets a user's
    test item predate other users' training items.

    Cut points are absolute unix seconds (``val_start``/``test_start``) or, when those are null,
    quantiles of all interaction times (default: the last 10 % of the timeline is test, the 10 % before
    it validation). ``use_official_split`` takes the cut points the dataset's publisher used
    (``meta["official_split"]``, Amazon 2023) when the dataset has them.

    A case is a user's first interaction in the period that has at least one earlier interaction (a
    model cannot rank from nothing): one case per user and period, the ``Split`` structure of
    leave-one-out (the evaluation loop keeps one case per user). Later interactions of a period are
    neither targets nor training data; validation-period items are history for the test case.
    Needs timestamps: order-only datasets (the P5 form, ML-1M sequences) are an error.
    """

    name = "global_temporal"
    version = "1"

    def __init__(
        self,
        val_start: int | None = None,
        test_start: int | None = None,
        val_quantile: float = 0.8,
        test_quantile: float = 0.9,
        use_official_split: bool = True,
        mask_history: bool = False,
    ) -> None:
        if not 0.0 < val_quantile <= test_quantile < 1.0:
            raise ValueError(
                f"need 0 < val_quantile <= test_quantile < 1, got {val_quantile}, {test_quantile}"
            )
        self.val_start, self.test_start = val_start, test_start
        self.val_quantile, self.test_quantile = val_quantile, test_quantile
        self.use_official_split = use_official_split
        self.mask_history = mask_history
        self.cuts: dict[str, object] = {}

    def cut_points(self, ds: SequenceDataset) -> tuple[int, int, str]:
        assert ds.timestamps is not None
        official = ds.meta.get("official_split") if self.use_official_split else None
        if self.val_start is not None and self.test_start is not None:
            return int(self.val_start), int(self.test_start), "absolute"
        if official and self.val_start is None and self.test_start is None:
            return int(official["val_start"]), int(official["test_start"]), "official"
        v, t = np.quantile(ds.timestamps, [self.val_quantile, self.test_quantile], method="lower")
        val_start = int(self.val_start) if self.val_start is not None else int(v)
        test_start = int(self.test_start) if self.test_start is not None else int(t)
        return val_start, test_start, "quantile"

    def split(self, ds: SequenceDataset) -> Split:
        if ds.timestamps is None:
            raise ValueError(
                f"protocol global_temporal needs interaction timestamps, and dataset {ds.name!r} "
                f"(source {ds.meta.get('source', '?')}) has only their order; use protocol=leave_one_out "
                "or a source with timestamps (the official raw files, e.g. data=amazon_beauty_raw)"
            )
        val_start, test_start, how = self.cut_points(ds)
        if val_start > test_start:
            raise ValueError(f"global_temporal: val_start {val_start} is after test_start {test_start}")
        ts, offsets = np.asarray(ds.timestamps, dtype=np.int64), ds.offsets
        lengths = ds.lengths()
        user_of = np.repeat(np.arange(ds.num_users), lengths)
        pos = np.arange(len(ts))
        if np.any((np.diff(ts) < 0) & (user_of[1:] == user_of[:-1])):
            raise ValueError(f"dataset {ds.name!r}: timestamps are not chronological within users")
        big = np.iinfo(np.int64).max
        starts = offsets[:-1]
        has_history = pos > np.repeat(starts, lengths)

        def first(mask: np.ndarray) -> np.ndarray:  # per user: first flat position where mask holds
            cand = np.where(mask, pos, big)
            out = np.full(ds.num_users, big, dtype=np.int64)
            nonempty = lengths > 0
            if len(ts):
                out[nonempty] = np.minimum.reduceat(cand, starts[nonempty])
            return out

        in_val = (ts >= val_start) & (ts < test_start)
        train_end = np.minimum(first(ts >= val_start), offsets[1:])  # training is strictly before val_start
        val_pos = first(in_val & has_history)
        test_pos = first((ts >= test_start) & has_history)
        has_val, has_test = val_pos < big, test_pos < big
        val_users = np.flatnonzero(has_val).astype(np.int64)
        test_users = np.flatnonzero(has_test).astype(np.int64)
        self.cuts = {"val_start": val_start, "test_start": test_start, "from": how}
        return Split(
            train_end=train_end.astype(np.int64),
            val=EvalCases(users=val_users, target_pos=val_pos[val_users]),
            test=EvalCases(users=test_users, target_pos=test_pos[test_users]),
            dropped_users=int((~(has_val | has_test)).sum()),
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "mask_history": self.mask_history,
            "params": {
                "val_quantile": self.val_quantile,
                "test_quantile": self.test_quantile,
                "use_official_split": self.use_official_split,
                **self.cuts,  # the cut points used (unix seconds) and where they came from
            },
        }
