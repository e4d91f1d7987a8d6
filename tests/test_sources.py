"""Every dataset reader on fixtures in its official format; the columnar builder; parse errors."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import shutil

import numpy as np
import pandas as pd
import polars as pl
import pytest

from recbench.data.amazon import AmazonRawSource, P5SequenceSource
from recbench.data.amazon2023 import Amazon2023Source
from recbench.data.dataset import SequenceDataset, load_dataset
from recbench.data.interactions import build_from_log, k_core
from recbench.data.movielens import (
    MovieLens1MSource,
    MovieLens20MSource,
    MovieLens100KSource,
    MovieLensSequenceSource,
)
from recbench.embeddings.text import render_texts

from .conftest import FIXTURES

AMAZON = FIXTURES / "amazon_2014"
ML = FIXTURES / "movielens"


def amazon_raw(root=AMAZON, **kw) -> AmazonRawSource:
    return AmazonRawSource(str(root), "raw/reviews_Fixture_5.json.gz", "raw/meta_Fixture.json.gz", **kw)


def without_timestamps(ds: SequenceDataset) -> SequenceDataset:
    return dataclasses.replace(ds, timestamps=None)


# ---- Amazon 2014: the official files and the P5 form agree ------------------------------------------
def test_amazon_raw_files_and_p5_form_give_the_same_canonical_data():
    raw = amazon_raw().read("fx")
    p5 = P5SequenceSource(str(AMAZON), "p5/user_sequence.txt", "p5/items.jsonl").read("fx")
    assert raw.timestamps is not None and p5.timestamps is None
    assert without_timestamps(raw).fingerprint() == p5.fingerprint()
    assert raw.item_text.equals(p5.item_text)
    assert (raw.num_users, raw.num_items, raw.num_interactions) == (6, 5, 30)


def test_amazon_raw_k_core_runs_to_a_fixed_point_and_keeps_ties_in_file_order():
    ds = amazon_raw().read("fx")
    assert set(ds.user_ids) == {f"U{i}" for i in range(1, 7)}  # U7 (4 reviews) and U8 (cascade) gone
    assert "X" not in set(ds.item_ids)
    assert ds.meta["log"]["k_core"]["passes"] == 3  # X goes on pass 1, U8 on pass 2, pass 3 is stable
    assert np.all(np.diff(ds.timestamps)[np.diff(np.repeat(np.arange(6), ds.lengths())) == 0] >= 0)
    # Same-second reviews keep their order in the review file.
    reviews = pl.read_ndjson(gzip.decompress((AMAZON / "raw/reviews_Fixture_5.json.gz").read_bytes()))
    for u, user in enumerate(ds.user_ids):
        mine = reviews.filter(pl.col("reviewerID") == user).with_row_index("row")
        mine = mine.filter(pl.col("asin") != "X").sort(["unixReviewTime", "row"])
        assert ds.item_ids[ds.sequence(u)].tolist() == mine.get_column("asin").to_list()


def test_amazon_meta_is_python_literal_and_optional_fields_come_along():
    ds = amazon_raw(text_fields=["title", "categories", "brand", "price"]).read("fx")
    text = ds.item_text.set_index(pd.Index(ds.item_ids))
    assert text.loc["I2", "title"] == "Kid's Kite"
    assert text.loc["I2", "categories"] == "Toys & Games > Outdoor | Sports > Kites"
    assert text.loc["I1", "title"] == "Wooden Puzzle &amp; Box"  # raw, as in the P5 files
    assert (text.loc["I3", "brand"], text.loc["I1", "price"]) == ("Acme", "3.5")
    assert text.loc["I4"].tolist() == ["", "", "", ""]  # no metadata line


def test_amazon_meta_is_never_evaluated(tmp_path):
    shutil.copytree(AMAZON / "raw", tmp_path / "raw")
    with gzip.open(tmp_path / "raw/meta_Fixture.json.gz", "at") as f:
        f.write("{'asin': 'I4', 'title': __import__('os').getcwd()}\n")
    with pytest.raises(ValueError, match=r"meta_Fixture.json.gz:6: neither JSON nor a Python literal"):
        amazon_raw(tmp_path).read("fx")


def test_amazon_review_errors_name_file_line_and_field(tmp_path, caplog):
    (tmp_path / "raw").mkdir()
    bad = tmp_path / "raw/reviews_Fixture_5.json.gz"
    lines = [
        '{"reviewerID": "A", "asin": "B", "unixReviewTime": 1, "overall": 5.0}',
        '{"reviewerID": "A", "asin": "C", "unixReviewTime": "yesterday"}',
    ]
    bad.write_bytes(gzip.compress("\n".join(lines).encode()))
    src = AmazonRawSource(str(tmp_path), "raw/reviews_Fixture_5.json.gz", user_core=1, item_core=1)
    with pytest.raises(
        ValueError, match=r"reviews_Fixture_5.json.gz:2: field 'unixReviewTime': expected an int"
    ):
        src.read("x")
    lines[1] = '{"reviewerID": "A", "unixReviewTime": 2, "mood": "happy"}'
    bad.write_bytes(gzip.compress("\n".join(lines).encode()))
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(ValueError, match=r":2: missing required field 'asin'"),
    ):
        src.read("x")
    assert "ignoring unknown column(s) ['mood']" in caplog.text
    bad.write_bytes(gzip.compress(b'{"asin": "B", "unixReviewTime": 1}\n'))
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['reviewerID'\]"):
        src.read("x")


def test_amazon_raw_through_the_cache_and_published_stats(tmp_path):
    ds = load_dataset("fx", amazon_raw(), cache_dir=tmp_path, expected_stats={"users": 6, "items": 5})
    again = load_dataset("fx", amazon_raw(), cache_dir=tmp_path)
    assert again.fingerprint() == ds.fingerprint() and again.timestamps is not None


# ---- MovieLens: three official formats and the sequence form agree ----------------------------------
def ml_sources():
    return {
        "100k": MovieLens100KSource(str(ML), "ml-100k/u.data", "ml-100k/u.item"),
        "1m": MovieLens1MSource(str(ML), "ml-1m/ratings.dat", "ml-1m/movies.dat"),
        "20m": MovieLens20MSource(str(ML), "ml-20m/ratings.csv", "ml-20m/movies.csv"),
    }


def test_movielens_formats_give_the_same_canonical_data():
    out = {k: s.read("ml") for k, s in ml_sources().items()}
    prints = {k: ds.fingerprint() for k, ds in out.items()}
    assert len(set(prints.values())) == 1, prints
    for ds in out.values():
        assert ds.item_text.equals(out["1m"].item_text)
    seq = MovieLensSequenceSource(str(ML), "ml-1m-seq/user_sequence.txt", "ml-1m/movies.dat").read("ml")
    assert seq.fingerprint() == without_timestamps(out["1m"]).fingerprint()
    ds = out["1m"]
    assert list(ds.user_ids) == ["1", "2"]  # user 3 has 4 ratings: dropped by the 5-ratings filter
    # user 1: times 50, 60, 70, 100, 100 -> the two same-second ratings keep file order (10 before 30)
    assert ds.item_ids[ds.sequence(0)].tolist() == ["20", "50", "40", "10", "30"]
    text = ds.item_text.set_index(pd.Index(ds.item_ids))
    assert text.loc["20", "title"] == "Café Society (1995)"  # latin-1 decoded
    assert text.loc["50", "title"] == "Usual Suspects, The (1995)"
    assert text.loc["10", "genres"] == "Animation, Children's, Comedy"
    assert text.loc["60", "genres"] == ""
    assert "90" not in set(ds.item_ids)  # never rated


def test_movielens_min_rating_and_item_core():
    src = MovieLens1MSource(str(ML), "ml-1m/ratings.dat", "ml-1m/movies.dat", min_rating=4, user_core=1)
    ds = src.read("ml")
    assert ds.num_interactions == 10  # ratings >= 4
    strict = MovieLens1MSource(str(ML), "ml-1m/ratings.dat", None, user_core=2, item_core=2).read("ml")
    assert set(strict.item_ids) == {"10", "20", "30", "40"}  # 50, 60, 70, 80: one rating each


@pytest.mark.parametrize(
    "fmt,file,content,match",
    [
        (
            "1m",
            "ml-1m/ratings.dat",
            "1::10::5::100\n1::x::3::50\n",
            r"ratings.dat:2: field 'item' \(column 2\): expected an integer, got 'x'",
        ),
        (
            "1m",
            "ml-1m/ratings.dat",
            "1::10::5::100\n1::20::3\n",
            r"ratings.dat:2: field 'timestamp' \(column 4\) is missing",
        ),
        (
            "100k",
            "ml-100k/u.data",
            "1\t10\t5\t100\n\n1\t20\t3.5x\t50\n",
            r"u.data:3: field 'rating' \(column 3\): expected a number",
        ),
        (
            "20m",
            "ml-20m/ratings.csv",
            "userId,movieId,timestamp\n1,10,100\n",
            r"ratings.csv: missing required column\(s\) \['rating'\]",
        ),
    ],
)
def test_movielens_parse_errors_name_file_line_and_field(tmp_path, fmt, file, content, match):
    shutil.copytree(ML, tmp_path, dirs_exist_ok=True)
    (tmp_path / file).write_text(content)
    src = {
        "100k": MovieLens100KSource(str(tmp_path), "ml-100k/u.data", None),
        "1m": MovieLens1MSource(str(tmp_path), "ml-1m/ratings.dat", None),
        "20m": MovieLens20MSource(str(tmp_path), "ml-20m/ratings.csv", None),
    }[fmt]
    with pytest.raises(ValueError, match=match):
        src.read("ml")


def test_movielens_unknown_columns_are_ignored_with_a_warning(tmp_path, caplog):
    shutil.copytree(ML, tmp_path, dirs_exist_ok=True)
    csv = (tmp_path / "ml-20m/ratings.csv").read_text().splitlines()
    lines = [csv[0] + ",tag"] + [line + ",x" for line in csv[1:]]
    (tmp_path / "ml-20m/ratings.csv").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        ds = MovieLens20MSource(str(tmp_path), "ml-20m/ratings.csv", "ml-20m/movies.csv").read("ml")
    assert "ignoring unknown column(s) ['tag']" in caplog.text
    assert ds.fingerprint() == ml_sources()["20m"].read("ml").fingerprint()


def test_movies_dat_errors_name_the_line(tmp_path):
    shutil.copytree(ML, tmp_path, dirs_exist_ok=True)
    (tmp_path / "ml-1m/movies.dat").write_text(
        "10::Toy Story (1995)::Comedy\n20::Broken\n", encoding="latin-1"
    )
    with pytest.raises(ValueError, match=r"movies.dat:2: expected 'MovieID::Title::Genres'"):
        MovieLens1MSource(str(tmp_path), "ml-1m/ratings.dat", "ml-1m/movies.dat").read("ml")


# ---- Amazon Reviews 2023 through HF datasets, on a local copy of the hub layout ---------------------
def test_amazon_2023_reads_the_hub_layout(tmp_path):
    src = Amazon2023Source("Fixture", root=str(FIXTURES / "amazon_2023"), cache_dir=str(tmp_path))
    ds = src.read("a23")
    assert list(ds.user_ids) == ["AE1", "AE2", "AE3", "AE4"]
    seq = {u: ds.item_ids[ds.sequence(i)].tolist() for i, u in enumerate(ds.user_ids)}
    # AE1: B01 (t0) B02 B03 (t4s, tie after AE2's B03) | valid B04, B01 | test B02 — across the three files
    assert seq["AE1"] == ["B01", "B02", "B03", "B04", "B01", "B02"]
    assert ds.timestamps is not None and ds.timestamps[0] == 1_600_000_000
    official = ds.meta["official_split"]
    assert (official["val_start"], official["test_start"]) == (1_700_000_000, 1_800_000_000)
    assert official["rows"] == {"train": 7, "valid": 3, "test": 3}
    text = ds.item_text.set_index(pd.Index(ds.item_ids))
    assert text.loc["B03", "title"] == 'Puzzle "1000"'
    assert text.loc["B01", "categories"] == "Toys & Games > Trains"
    assert text.loc["B04"].tolist() == ["", ""]
    assert set(src.files()) == {"train", "valid", "test", "meta"}


def test_amazon_2023_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Nope.train.csv"):
        Amazon2023Source("Nope", root=str(FIXTURES / "amazon_2023")).files()


# ---- the columnar builder ---------------------------------------------------------------------------
def test_k_core_is_a_fixed_point_not_one_pass():
    # a-b-c chain: removing item z (1 interaction) takes user v below 2, which takes item y below 2.
    log = pl.DataFrame(
        {"user": ["u", "u", "w", "w", "v", "v", "u", "w"], "item": ["x", "y", "x", "y", "y", "z", "q", "q"]}
    )
    kept, passes = k_core(log, user_core=2, item_core=2)
    assert sorted(zip(kept["user"], kept["item"], strict=True)) == [
        ("u", "q"), ("u", "x"), ("u", "y"), ("w", "q"), ("w", "x"), ("w", "y"),
    ]  # fmt: skip
    assert passes == 3
    again, _ = k_core(kept, 2, 2)
    assert again.height == kept.height


def test_builder_matches_from_sequences_on_order_only_data():
    rng = np.random.default_rng(0)
    seqs = [(f"u{u}", [f"i{i}" for i in rng.integers(0, 40, size=rng.integers(1, 12))]) for u in range(50)]
    log = pl.DataFrame({"user": [u for u, s in seqs for _ in s], "item": [i for _, s in seqs for i in s]})
    text = pd.DataFrame({"title": [f"t{i}" for i in range(40)]}, index=[f"i{i}" for i in range(40)])
    a = build_from_log("x", log, text)
    b = SequenceDataset.from_sequences("x", seqs, item_text=text)
    assert a.fingerprint() == b.fingerprint() and a.item_text.equals(b.item_text)


def test_text_templates_on_a_dataset_without_text_name_it():
    ds = SequenceDataset.from_sequences("amazon_sports", [("u", ["a", "b", "c"])])
    with pytest.raises(KeyError, match=r"dataset 'amazon_sports' has no item text at all"):
        render_texts(ds.item_text, "{title}")


def test_stats_command_prints_a_card_and_json(capsys):
    import json

    from recbench.data.__main__ import main

    assert main(["stats", "data=synthetic"]) == 0
    text = capsys.readouterr().out
    assert "users          300" in text and "item text      100.00% of items have text" in text
    assert main(["stats", "--json", "data=synthetic", "data.source.num_users=40"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["users"] == 40 and {"sparsity", "mean_seq_len", "median_seq_len", "fingerprint"} <= set(card)


def test_amazon_2023_fetches_pinned_files_from_the_hub(monkeypatch):
    """Without a local root the files come from the hub at the pinned revision (the hub is not
    reachable here: the download function is replaced by one that serves the fixture)."""
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, repo_type, revision):
        calls.append((repo_id, filename, repo_type, revision))
        return str(FIXTURES / "amazon_2023" / filename.replace("Toys_and_Games", "Fixture"))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    files = Amazon2023Source("Toys_and_Games", revision="abc123").files()
    assert set(files) == {"train", "valid", "test", "meta"} and all(p.is_file() for p in files.values())
    assert calls[0] == (
        "McAuley-Lab/Amazon-Reviews-2023",
        "benchmark/5core/timestamp/Toys_and_Games.train.csv",
        "dataset",
        "abc123",
    )
    assert calls[-1][1] == "raw/meta_categories/meta_Toys_and_Games.jsonl"


def test_missing_benchmark_files_name_the_one_command_that_fetches_them(tmp_path):
    from recbench.data.amazon import P5SequenceSource
    from recbench.data.movielens import MovieLensSequenceSource
    from recbench.errors import MissingDataError

    p5 = P5SequenceSource(str(tmp_path / "amazon_toys"), "raw/user_sequence.txt.gz")
    with pytest.raises(MissingDataError) as e:
        p5.files()
    assert "raw/user_sequence.txt.gz" in str(e.value)
    assert "python -m recbench.run data=amazon_toys_raw allow_unverified=true" in str(e.value)
    ml = MovieLensSequenceSource(str(tmp_path / "movielens_1m"), "raw/seq.txt.gz")
    with pytest.raises(MissingDataError, match=r"python -m recbench\.run data=ml_1m_raw"):
        ml.files()
