"""Data tier: the real benchmark files match their published statistics exactly."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from recbench.data.protocol import GlobalTemporal, LeaveOneOut
from recbench.embeddings.text import render_texts

from .conftest import CONF_DIR

pytestmark = pytest.mark.data


def data_config(name: str, data_dir, tmp_path, *extra: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        overrides = [f"data={name}", f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path}"]
        return compose("config", overrides=[*overrides, f"paths.output_dir={tmp_path}", *extra]).data


def load(name: str, data_dir, tmp_path, folder: str | None = None):
    if not (data_dir / (folder or name)).is_dir():
        pytest.skip(f"{data_dir / (folder or name)} absent")
    return instantiate(data_config(name, data_dir, tmp_path))


def test_amazon_beauty_published_statistics(real_data_dir, tmp_path):
    ds = load("amazon_beauty", real_data_dir, tmp_path)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (22_363, 12_101, 198_502)
    stats = ds.stats()
    assert stats["min_seq_len"] >= 5  # 5-core
    assert stats["item_text_coverage"] == 1.0
    assert ds.item_text["title"].str.len().gt(0).all()
    split = LeaveOneOut().split(ds)
    assert split.dropped_users == 0 and len(split.test) == 22_363
    # the cached copy is the same data
    again = load("amazon_beauty", real_data_dir, tmp_path)
    assert again.fingerprint() == ds.fingerprint()


PUBLISHED = {  # users, items, interactions
    "amazon_beauty": (22_363, 12_101, 198_502),
    "amazon_sports": (35_598, 18_357, 296_337),
    "amazon_toys": (19_412, 11_924, 167_597),
    "ml_1m": (6_040, 3_706, 1_000_209),
    "ml_100k": (943, 1_682, 100_000),
}
FOLDER = {"ml_1m": "movielens_1m", "ml_100k": "movielens_100k"}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_statistics(name, real_data_dir, tmp_path):
    if not (real_data_dir / FOLDER.get(name, name)).is_dir():
        pytest.skip(f"{real_data_dir / FOLDER.get(name, name)} absent")
    ds = load(name, real_data_dir, tmp_path, folder=FOLDER.get(name, name))
    assert (ds.num_users, ds.num_items, ds.num_interactions) == PUBLISHED[name]
    stats = ds.stats()
    assert stats["min_seq_len"] >= 5
    split = LeaveOneOut().split(ds)
    assert split.dropped_users == 0
    if name == "amazon_sports":
        assert stats["item_text_coverage"] == 0.0
        with pytest.raises(KeyError, match=r"dataset 'amazon_sports' has no item text at all"):
            render_texts(ds.item_text, "{title}")
    else:
        assert stats["item_text_coverage"] == 1.0
        assert ds.item_text["title"].str.len().gt(0).all()


def test_ml_100k_has_real_timestamps_for_the_temporal_protocol(real_data_dir, tmp_path):
    if not (real_data_dir / "movielens_100k").is_dir():
        pytest.skip("movielens_100k absent")
    ds = load("ml_100k", real_data_dir, tmp_path, folder="movielens_100k")
    assert ds.timestamps is not None
    split = GlobalTemporal().split(ds)
    assert len(split.test) > 0 and len(split.val) > 0
    # the first 3 users of u.data in file order are 196, 186, 22
    assert list(ds.user_ids[:3]) == ["196", "186", "22"]


def test_ml_1m_sequences_hold_exactly_the_ratings_file_pairs(real_data_dir, tmp_path):
    """The independent user-movie parquet (ratings.dat order) and the sequences agree pair for pair."""
    root = real_data_dir / "movielens_1m/raw"
    if not (root / "ratings_user_movie_only.parquet").is_file():
        pytest.skip(f"{root} absent")
    import numpy as np
    import pyarrow.parquet as pq

    ds = load("ml_1m", real_data_dir, tmp_path, folder="movielens_1m")
    pairs = pq.read_table(root / "ratings_user_movie_only.parquet").to_pandas()
    users = np.repeat(ds.user_ids, ds.lengths()).astype(np.int64)
    ours = np.sort(users * 100_000 + ds.item_ids[ds.items].astype(np.int64))
    theirs = np.sort(
        pairs["userID"].astype(np.int64).to_numpy() * 100_000 + pairs["movieID"].astype(np.int64).to_numpy()
    )
    assert np.array_equal(ours, theirs)


def test_beauty_training_matrix_holds_no_evaluation_target(real_data_dir, tmp_path):
    """The CF models' training matrix on real data: every user's training items and nothing of its
    validation or test target (unless the same item also occurs earlier in that user's history)."""
    import numpy as np

    from recbench.inputs import RunContext, train_matrix

    ds = load("amazon_beauty", real_data_dir, tmp_path)
    split = LeaveOneOut().split(ds)
    m = train_matrix(RunContext(ds, split, None))
    assert m.shape == (22_363, 12_101)
    seen = [set(ds.items[ds.offsets[u] : split.train_end[u]].tolist()) for u in range(ds.num_users)]
    assert m.nnz == sum(len(s) for s in seen)
    for cases in (split.val, split.test):
        targets = ds.items[cases.target_pos]
        in_matrix = np.asarray(m[cases.users, targets]).ravel() > 0
        expected = np.array([t in seen[u] for u, t in zip(cases.users, targets, strict=True)])
        assert np.array_equal(in_matrix, expected)  # only repeats of an earlier training item


@pytest.mark.parametrize("name", ["amazon_beauty", "amazon_toys", "amazon_sports"])
def test_the_published_copy_a_fallback_fetches_is_our_copy(name, real_data_dir, tmp_path):
    """The GRAM file each Amazon config falls back to (its sha256 pinned) is the local copy uncompressed,
    and read through the fallback it gives the pinned fingerprint; served from 127.0.0.1."""
    import gzip
    import hashlib
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    local = real_data_dir / name / "raw/user_sequence_asin.txt.gz"
    if not local.is_file():
        pytest.skip(f"{local} absent")
    served = tmp_path / "served"
    served.mkdir()
    body = gzip.decompress(local.read_bytes())
    (served / "user_sequence.txt").write_bytes(body)
    remote = data_config(name, tmp_path / "empty", tmp_path / "cache").fallback.downloads[0]
    assert remote.checksum == f"sha256:{hashlib.sha256(body).hexdigest()}"
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/user_sequence.txt"
        cfg = data_config(
            name, tmp_path / "empty", tmp_path / "cache", f"data.fallback.downloads.0.url={url}"
        )
        ds = instantiate(cfg)  # checks the pinned sha256, statistics and fingerprint
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert ds.fingerprint() == cfg.fingerprint
    assert ds.meta["source"] == "P5SequenceSource: raw/user_sequence.txt"
