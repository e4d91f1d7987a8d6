"""Canonical dataset form, the P5 reader, the cache, the leave-one-out protocol and the batching."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from recbench.data.amazon import P5SequenceSource
from recbench.data.datamodule import BucketBatchSampler, SequentialDataModule, train_windows
from recbench.data.dataset import (
    SequenceDataset,
    load_dataset,
    read_saved_dataset,
    save_dataset,
    sha256_file,
)
from recbench.data.protocol import LeaveOneOut
from recbench.data.synthetic import SyntheticSource

from .conftest import FIXTURES


def p5_source(root=FIXTURES / "amazon_p5") -> P5SequenceSource:
    return P5SequenceSource(str(root), "raw/user_sequence.txt", "raw/items.jsonl")


def test_p5_reader_ids_follow_first_appearance():
    ds = p5_source().read("fixture")
    assert list(ds.user_ids) == ["U1", "U2", "U3", "U4"]
    assert list(ds.item_ids) == ["A", "B", "C", "D", "E", "F", "G"]
    assert ds.sequence(2).tolist() == [0, 5, 6, 1]  # A F G B
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (4, 7, 14)
    assert ds.item_text.loc[1, "categories"] == "Beauty > Hair Care | Beauty > Bath"
    assert ds.item_text.loc[3, "title"] == ""  # D has no text entry: empty, not missing
    stats = ds.stats()
    assert stats["item_text_coverage"] == pytest.approx(5 / 7)  # D and E have no text; G has categories


def test_gzip_and_plain_give_the_same_fingerprint(tmp_path):
    (tmp_path / "raw").mkdir()
    for name in ("user_sequence.txt", "items.jsonl"):
        with (
            open(FIXTURES / "amazon_p5/raw" / name, "rb") as f,
            gzip.open(tmp_path / "raw" / f"{name}.gz", "wb") as g,
        ):
            shutil.copyfileobj(f, g)
    gz = P5SequenceSource(str(tmp_path), "raw/user_sequence.txt.gz", "raw/items.jsonl.gz").read("x")
    assert gz.fingerprint() == p5_source().read("x").fingerprint()


def test_save_and_read_round_trip(tmp_path):
    ds = p5_source().read("fixture")
    save_dataset(ds, tmp_path / "ds")
    back = read_saved_dataset(tmp_path / "ds")
    assert back.fingerprint() == ds.fingerprint()
    assert back.item_text.equals(ds.item_text)
    assert not list(tmp_path.glob(".ds.*")), "temp folder left behind"


def test_cache_is_keyed_by_source_content(tmp_path):
    root = tmp_path / "src"
    shutil.copytree(FIXTURES / "amazon_p5", root)
    first = load_dataset("fx", p5_source(root), cache_dir=tmp_path / "cache")
    assert len([p for p in (tmp_path / "cache/fx").iterdir() if p.is_dir()]) == 1
    again = load_dataset("fx", p5_source(root), cache_dir=tmp_path / "cache")
    assert again.meta["cache_key"] == first.meta["cache_key"]
    with open(root / "raw/user_sequence.txt", "a") as f:
        f.write("U5 A B C\n")
    changed = load_dataset("fx", p5_source(root), cache_dir=tmp_path / "cache")
    assert changed.meta["cache_key"] != first.meta["cache_key"]
    assert changed.num_users == 5


def test_published_stats_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"users: expected 5, got 4.*interactions: expected 15, got 14"):
        load_dataset("fx", p5_source(), expected_stats={"users": 5, "items": 7, "interactions": 15})


def test_pinned_checksum_mismatch_names_the_file():
    with pytest.raises(
        ValueError, match=r"user_sequence.txt: sha256 is [0-9a-f]{64}, the dataset config pins 00"
    ):
        load_dataset("fx", p5_source(), sha256={"sequences": "00"})
    good = sha256_file(FIXTURES / "amazon_p5/raw/user_sequence.txt")
    assert load_dataset("fx", p5_source(), sha256={"sequences": good}).num_users == 4


def test_missing_files_say_what_and_where(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"(?s)expected files are missing.*user_sequence.txt.*RECBENCH_DATA_DIR"
    ):
        p5_source(tmp_path).files()


def test_malformed_lines_name_file_and_line(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/user_sequence.txt").write_text("U1 A B\nU2\n")
    (tmp_path / "raw/items.jsonl").write_text('{"asin": "A"}\n{"title": "no asin"}\n')
    with pytest.raises(ValueError, match=r"user_sequence.txt:2: expected 'user item"):
        p5_source(tmp_path).read("bad")
    (tmp_path / "raw/user_sequence.txt").write_text("U1 A B\n")
    with pytest.raises(ValueError, match=r"items.jsonl:2: missing required field 'asin'"):
        p5_source(tmp_path).read("bad")
    (tmp_path / "raw/items.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"items.jsonl:1: not valid JSON"):
        p5_source(tmp_path).read("bad")


def test_leave_one_out_split():
    ds = p5_source().read("fixture")
    split = LeaveOneOut().split(ds)
    assert split.dropped_users == 1  # U4 has two interactions
    assert split.test.users.tolist() == [0, 1, 2]
    assert ds.items[split.test.target_pos].tolist() == [4, 5, 1]  # E, F, B
    assert ds.items[split.val.target_pos].tolist() == [3, 2, 6]  # D, C, G
    # training never reaches the validation target
    for u in split.val.users:
        assert split.train_end[u] == split.val.target_pos[list(split.val.users).index(u)]


def test_training_windows_cover_every_target_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 130, size=50)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    train_end = offsets[1:] - 2
    starts, sizes = train_windows(offsets, train_end, max_len=50)
    assert sizes.max() <= 50
    covered = np.concatenate([np.arange(s + 1, s + 1 + n) for s, n in zip(starts, sizes, strict=True)])
    expected = np.concatenate([np.arange(b + 1, e) for b, e in zip(offsets[:-1], train_end, strict=True)])
    assert sorted(covered.tolist()) == sorted(expected.tolist())


def test_batches_are_left_padded_and_history_is_complete():
    ds = p5_source().read("fixture")
    dm = SequentialDataModule(ds, LeaveOneOut().split(ds), max_len=2, batch_size=8, eval_batch_size=8)
    batch = next(iter(dm.test_dataloader()))
    # U1 history A B C D -> last 2 tokens (C, D) = (3, 4); U2 history B C -> (2, 3)
    assert batch.inputs[0].tolist() == [3, 4]
    assert batch.inputs[1].tolist() == [2, 3]
    assert batch.targets.tolist() == [4, 5, 1]
    # masking uses the whole history, not only the last max_len items
    rows, items = batch.history_rows.tolist(), batch.history_items.tolist()
    assert sorted(i for r, i in zip(rows, items, strict=True) if r == 0) == [0, 1, 2, 3]
    train = next(iter(dm.train_dataloader()))
    assert (train.inputs[:, -1] > 0).all(), "left padding: the latest item is always last"


def test_bucket_sampler_is_a_seeded_permutation():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    a = BucketBatchSampler(lengths, 32, seed=3)
    epoch1 = [i for b in a for i in b]
    epoch2 = [i for b in a for i in b]
    assert sorted(epoch1) == list(range(1000)) and epoch1 != epoch2
    assert [i for b in BucketBatchSampler(lengths, 32, seed=3) for i in b] == epoch1


def test_eval_batch_size_bounded_by_score_budget():
    ds = SyntheticSource(num_users=20, num_items=100).read("s")
    dm = SequentialDataModule(ds, LeaveOneOut().split(ds), eval_batch_size=512, score_budget=1000)
    assert dm.eval_batch_size == 10


def test_synthetic_is_seeded_and_repeat_free():
    a, b = SyntheticSource(seed=1).read("s"), SyntheticSource(seed=1).read("s")
    assert a.fingerprint() == b.fingerprint()
    assert SyntheticSource(seed=2).read("s").fingerprint() != a.fingerprint()
    assert all(len(set(a.sequence(u))) == len(a.sequence(u)) for u in range(a.num_users))


def test_dataset_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="item index outside"):
        SequenceDataset("bad", np.array(["u"]), np.array(["i"]), np.array([0, 1]), np.array([3]))


def test_concurrent_loads_build_the_cache_once(tmp_path):
    """Jobs of a parallel sweep share the cache: one builds it, the others read the finished copy."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: load_dataset("fx", p5_source(), cache_dir=tmp_path), range(4)))
    assert len({r.fingerprint() for r in results}) == 1
    assert len([p for p in (tmp_path / "fx").iterdir() if p.is_dir()]) == 1


def test_ranks_take_disjoint_equal_shares_of_batches():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)  # 32 batches of 32 (the last has 8)
    shards = [list(BucketBatchSampler(lengths, 32, seed=3, rank=r, world=3)) for r in range(3)]
    assert [len(s) for s in shards] == [10, 10, 10]  # 32 // 3 each; 2 batches dropped this epoch
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen))


def test_bucket_pool_zero_gives_uniform_random_batches():
    """pool=0: consecutive slices of one seeded permutation, lengths not sorted (RecBole's batches)."""
    lengths = np.arange(1000) % 50
    batches = list(BucketBatchSampler(lengths, 100, seed=3, pool=0))
    order = [i for b in batches for i in b]
    assert sorted(order) == list(range(1000))
    perm = np.random.default_rng([3, 0]).permutation(1000)
    assert sorted(map(sorted, batches)) == sorted(sorted(perm[i : i + 100]) for i in range(0, 1000, 100))
    assert all(np.ptp(lengths[b]) > 40 for b in batches), "batches mix lengths"
