"""The global-temporal protocol: cut points, one case per user and period, and the datamodule reads it."""

from __future__ import annotations

import numpy as np
import pytest

from recbench.data.amazon2023 import Amazon2023Source
from recbench.data.datamodule import SequentialDataModule
from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import GlobalTemporal, LeaveOneOut

from .conftest import FIXTURES


def timed(seqs: dict[str, list[tuple[str, int]]]) -> SequenceDataset:
    ds = SequenceDataset.from_sequences("t", [(u, [i for i, _ in s]) for u, s in seqs.items()])
    ds.timestamps = np.array([t for s in seqs.values() for _, t in s], dtype=np.int64)
    return ds


DS = {
    "a": [("x", 1), ("y", 2), ("z", 10), ("w", 11), ("v", 20), ("x", 21)],  # train 2, val z, test v
    "b": [("y", 3), ("x", 4), ("z", 5)],  # training only
    "c": [("w", 12), ("y", 13)],  # joins in the validation period: val y (history w); no test
    "d": [("v", 25)],  # first seen in the test period: no history, no case
    "e": [("x", 6), ("v", 22)],  # no validation interaction; test v with history x
}


def test_cut_points_split_the_timeline():
    ds = timed(DS)
    split = GlobalTemporal(val_start=10, test_start=20).split(ds)
    users = {u: i for i, u in enumerate(ds.user_ids)}
    assert split.val.users.tolist() == [users["a"], users["c"]]
    assert split.test.users.tolist() == [users["a"], users["e"]]
    assert ds.item_ids[ds.items[split.val.target_pos]].tolist() == ["z", "y"]
    assert ds.item_ids[ds.items[split.test.target_pos]].tolist() == ["v", "v"]
    # training targets are strictly before val_start
    for u in range(ds.num_users):
        b, e = ds.offsets[u], split.train_end[u]
        assert (ds.timestamps[b:e] < 10).all()
        assert e == ds.offsets[u + 1] or ds.timestamps[e] >= 10
    assert split.dropped_users == 2  # b and d have no evaluation case
    # the test case's history includes the validation-period items, as in leave-one-out
    a = users["a"]
    assert split.test.target_pos[0] - ds.offsets[a] == 4


def test_quantile_cuts_and_description():
    ds = timed(DS)
    protocol = GlobalTemporal(val_quantile=0.5, test_quantile=0.8)
    protocol.split(ds)
    cuts = protocol.describe()["params"]
    assert cuts["from"] == "quantile"
    assert cuts["val_start"] == int(np.quantile(ds.timestamps, 0.5, method="lower"))


def test_order_only_data_is_a_clear_error():
    ds = SequenceDataset.from_sequences("amazon_beauty", [("u", ["a", "b", "c"])])
    with pytest.raises(ValueError, match=r"global_temporal needs interaction timestamps.*'amazon_beauty'"):
        GlobalTemporal().split(ds)


def test_official_cut_points_of_amazon_2023(tmp_path):
    ds = Amazon2023Source("Fixture", root=str(FIXTURES / "amazon_2023"), cache_dir=str(tmp_path)).read("a")
    protocol = GlobalTemporal()
    split = protocol.split(ds)
    assert protocol.cuts == {"val_start": 1_700_000_000, "test_start": 1_800_000_000, "from": "official"}
    users = list(ds.user_ids)
    # AE4's only interaction is in the test period: no history, no case; AE2's validation B01 has history.
    assert [users[u] for u in split.test.users] == ["AE1", "AE3"]
    assert [users[u] for u in split.val.users] == ["AE1", "AE2"]
    assert ds.item_ids[ds.items[split.val.target_pos]].tolist() == ["B04", "B01"]  # first in the period


def test_the_datamodule_serves_a_temporal_split():
    ds = timed(DS)
    split = GlobalTemporal(val_start=10, test_start=20).split(ds)
    dm = SequentialDataModule(ds, split, max_len=3, batch_size=4, eval_batch_size=8)
    batch = next(iter(dm.test_dataloader()))
    assert batch.targets.tolist() == [int(ds.items[p]) for p in split.test.target_pos]
    assert batch.inputs.shape == (2, 3)
    train = next(iter(dm.train_dataloader()))
    assert (train.inputs[:, -1] > 0).all()
    assert dm.num_train_targets == 1 + 2  # a: y after x; b: x, z


def test_split_structures_agree_between_protocols():
    ds = timed(DS)
    loo, tmp = LeaveOneOut().split(ds), GlobalTemporal(val_start=10, test_start=20).split(ds)
    for s in (loo, tmp):
        assert s.train_end.dtype == np.int64 and s.val.target_pos.dtype == np.int64
        assert len(s.train_end) == ds.num_users
