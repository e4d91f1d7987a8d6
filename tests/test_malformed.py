"""Malformed source files, one class per test: each is an error naming the file (and the line and field
where there is one) or a counted, logged recovery, and a failed load leaves nothing in the dataset cache.

Every malformed file is written here, in tmp_path: tiny, hand-made, nothing from the real data.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from recbench.data.amazon import AmazonRawSource, P5SequenceSource
from recbench.data.amazon2023 import Amazon2023Source
from recbench.data.dataset import load_dataset, text_coverage
from recbench.data.esci import OFFICIAL_FILES, ESCI150Source, ESCIOfficialSource, load_search_dataset
from recbench.data.movielens import MovieLens20MSource, MovieLens100KSource, MovieLensSequenceSource
from recbench.errors import DataError
from recbench.results.schema import DatasetInfo

from .conftest import CONF_DIR, FIXTURES

ESCI_EXAMPLES = "raw/derived_opensearch150_examples_us.csv.gz"
ESCI_PRODUCTS = "raw/opensearch_ubi_ecommerce_products.jsonl.gz"
ESCI_HEADER = "query_id,query,product_id,product_locale,esci_label,source_rating,split_evidence"


def write(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` (gzip-compressed when the name ends in .gz)."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
    return path


def cache_entries(cache: Path, name: str) -> list[str]:
    """What a load left in the cache for ``name``: key folders and hidden temp folders.

    ``<key>.lock`` files are ignored, not removed by the library: FileLock leaves the file behind, and
    deleting a lock file that another process may have just opened would let two builders in at once.
    """
    folder = cache / name
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def p5(
    root: Path, items: str | None = "raw/items.jsonl", seq: str = "raw/user_sequence.txt"
) -> P5SequenceSource:
    return P5SequenceSource(str(root), seq, items)


def write_p5(
    root: Path, sequences: bytes | str = "U1 A B C\nU2 B C\n", items: bytes | str | None = None
) -> None:
    write(root / "raw/user_sequence.txt", sequences)
    write(root / "raw/items.jsonl", items if items is not None else '{"asin": "A", "title": "Lamp"}\n')


def load_fails(tmp_path: Path, source: Any, match: str) -> DataError:
    """Load ``source`` through a fresh cache, expect a DataError matching ``match``, check the cache is
    left empty, and return the error."""
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=match) as info:
        load_dataset("fx", source, cache_dir=cache)
    assert cache_entries(cache, "fx") == []
    return info.value


def search_load_fails(root: Path, source: Any, match: str) -> DataError:
    """Search datasets are not cached: a failed load must not write anything at all."""
    before = files_under(root)
    with pytest.raises(DataError, match=match) as info:
        load_search_dataset("esci", source)
    assert files_under(root) == before
    return info.value


# ---- 1. an empty sequence file ----------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", "\n   \n\n"], ids=["empty", "blank-lines"])
@pytest.mark.parametrize("seq", ["raw/user_sequence.txt", "raw/user_sequence.txt.gz"])
def test_empty_sequence_file_is_an_error(tmp_path, content, seq):
    write(tmp_path / seq, content)
    write(tmp_path / "raw/items.jsonl", '{"asin": "A", "title": "Lamp"}\n')
    err = load_fails(tmp_path, p5(tmp_path, seq=seq), r"no users/sequences")
    assert str(err).startswith(f"{tmp_path / seq}: no users/sequences")


# ---- 2. a byte that is not valid in the file's encoding ---------------------------------------------
def _amazon_raw(root: Path, meta: bool) -> AmazonRawSource:
    return AmazonRawSource(str(root), "reviews.json", "meta.json" if meta else None)


REVIEW = '{"reviewerID": "U1", "asin": "A", "unixReviewTime": 1}\n'
NON_UTF8: list[tuple[str, str, bytes, Callable[[Path], Any], int]] = [
    # (id, file, content with a 0xff byte, source, line of the byte)
    ("p5-sequences", "raw/user_sequence.txt", b"U1 A B\nU2 A \xff\n", lambda r: p5(r, None), 2),
    (
        "p5-sequences-gz",
        "raw/user_sequence.txt.gz",
        b"U1 A B\nU2 A \xff\n",
        lambda r: p5(r, None, seq="raw/user_sequence.txt.gz"),
        2,
    ),
    ("p5-item-text", "raw/items.jsonl", b'{"asin": "A"}\n\n{"asin": "B", "title": "\xff"}\n', p5, 3),
    (
        "csv-polars",
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n1,10,5,100\n1,2\xff0,3,50\n",
        lambda r: MovieLens20MSource(str(r), "ratings.csv", None),
        3,
    ),
    (
        "csv-header",
        "ratings.csv",
        b"userId,movie\xffId,rating,timestamp\n1,10,5,100\n",
        lambda r: MovieLens20MSource(str(r), "ratings.csv", None),
        1,
    ),
    (
        "csv-quoted",
        "movies.csv",
        b'movieId,title,genres\n10,"Toy Story",Comedy\n20,"Heat \xff",Action\n',
        lambda r: MovieLens20MSource(str(r), "ratings.csv", "movies.csv"),
        3,
    ),
    (
        "json-lines",
        "reviews.json",
        (REVIEW + REVIEW.replace("U1", "U\xff")).encode("latin-1"),
        lambda r: _amazon_raw(r, meta=False),
        2,
    ),
    (
        "meta-2014",
        "meta.json",
        b"{'asin': 'A', 'title': 'Lamp'}\n{'asin': 'B', 'title': '\xff'}\n",
        lambda r: _amazon_raw(r, meta=True),
        2,
    ),
]


@pytest.mark.parametrize("case", NON_UTF8, ids=[c[0] for c in NON_UTF8])
def test_non_utf8_byte_names_file_line_and_encoding(tmp_path, case):
    _, file, content, source, line = case
    # the other files of each source, valid
    write(tmp_path / "raw/user_sequence.txt", "U1 A B\n")
    write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n" + "".join(f"1,{i},5,{i}\n" for i in range(5)),
    )
    write(tmp_path / "reviews.json", REVIEW)
    write(tmp_path / file, content)
    err = load_fails(tmp_path, source(tmp_path), r"not valid utf-8")
    assert str(err).startswith(f"{tmp_path / file}:{line}: ")
    assert "0xff" in str(err) and "utf-8" in str(err)


def test_non_utf8_byte_in_esci_and_amazon_2023_files(tmp_path):
    bad = tmp_path / "esci" / ESCI_EXAMPLES
    write_esci_150(
        tmp_path / "esci",
        examples=(ESCI_HEADER + "\n1,lamp,P1,us,E,1,none\n2,m\xffug,P2,us,E,1,none\n").encode("latin-1"),
    )
    err = search_load_fails(tmp_path, ESCI150Source(str(tmp_path / "esci")), r"not valid utf-8")
    assert str(err).startswith(f"{bad}:3: ")
    write_esci_150(
        tmp_path / "esci2", products=b'{"asin": "P1", "title": "Lamp"}\n{"asin": "P2", "title": "\xff"}\n'
    )
    bad = tmp_path / "esci2" / ESCI_PRODUCTS
    err = search_load_fails(tmp_path, ESCI150Source(str(tmp_path / "esci2")), r"not valid utf-8")
    assert str(err).startswith(f"{bad}:2: ")

    for file, line in [
        ("benchmark/5core/timestamp/Fixture.valid.csv", 3),
        ("raw/meta_categories/meta_Fixture.jsonl", 2),
    ]:
        root = tmp_path / f"a23-{line}"
        shutil.copytree(FIXTURES / "amazon_2023", root)
        lines = (root / file).read_bytes().split(b"\n")
        lines[line - 1] = lines[line - 1].replace(b"B0", b"B\xff", 1)
        (root / file).write_bytes(b"\n".join(lines))
        src = Amazon2023Source("Fixture", root=str(root), cache_dir=str(tmp_path / "hf"))
        err = load_fails(tmp_path, src, r"not valid utf-8")
        assert str(err).startswith(f"{root / file}:{line}: ")


# ---- 3. a .gz file that is not gzip, or is cut short -------------------------------------------------
GZ_READERS: list[tuple[str, str, str, Callable[[Path], Any]]] = [
    # (id, file, its valid content, source)
    (
        "streamed",
        "raw/user_sequence.txt.gz",
        "U1 A B C\nU2 B C\n" * 50,
        lambda r: p5(r, None, seq="raw/user_sequence.txt.gz"),
    ),
    ("json-lines", "reviews.json.gz", REVIEW * 50, lambda r: AmazonRawSource(str(r), "reviews.json.gz")),
    (
        "delimited",
        "u.data.gz",
        "".join(f"{u}\t{i}\t5\t{i}\n" for u in range(5) for i in range(10)),
        lambda r: MovieLens100KSource(str(r), "u.data.gz", None),
    ),
]


@pytest.mark.parametrize("kind", ["not-gzip", "truncated"])
@pytest.mark.parametrize("case", GZ_READERS, ids=[c[0] for c in GZ_READERS])
def test_bad_gzip_names_the_file(tmp_path, case, kind):
    _, file, content, source = case
    path = tmp_path / file
    path.parent.mkdir(parents=True, exist_ok=True)
    whole = gzip.compress(content.encode(), mtime=0)
    path.write_bytes(content.encode() if kind == "not-gzip" else whole[: len(whole) // 2])
    if kind == "not-gzip":
        match = re.escape(f"{path}: not a gzip file")
    else:
        match = re.escape(f"{path}: truncated gzip (ends after {len(whole) // 2} bytes)")
    load_fails(tmp_path, source(tmp_path), match)


@pytest.mark.parametrize("kind", ["not-gzip", "truncated"])
def test_bad_gzip_in_a_search_file_names_it(tmp_path, kind):
    write_esci_150(tmp_path)
    path = tmp_path / ESCI_EXAMPLES
    whole = path.read_bytes()
    path.write_bytes(gzip.decompress(whole) if kind == "not-gzip" else whole[:-12])
    match = (
        "not a gzip file" if kind == "not-gzip" else rf"truncated gzip \(ends after {len(whole) - 12} bytes\)"
    )
    err = search_load_fails(tmp_path, ESCI150Source(str(tmp_path)), match)
    assert str(err).startswith(f"{path}: ")


# ---- 4. an item id twice in the item-text file --------------------------------------------------------
def test_duplicate_item_id_names_file_id_and_both_lines(tmp_path):
    write_p5(
        tmp_path, items='{"asin": "A", "title": "Lamp"}\n{"asin": "B"}\n\n{"asin": "A", "title": "Mug"}\n'
    )
    err = load_fails(tmp_path, p5(tmp_path), "duplicate item id")
    assert str(err) == (
        f"{tmp_path / 'raw/items.jsonl'}:4: duplicate item id 'A' (first on line 1): "
        "each item must have exactly one line"
    )
    ml = tmp_path / "ml"
    write(ml / "seq.txt", "1 10 20\n")
    write(ml / "movies.dat", "10::Heat (1995)::Action\n20::Up (2009)::Animation\n10::Heat (1995)::Crime\n")
    load_fails(
        tmp_path,
        MovieLensSequenceSource(str(ml), "seq.txt", "movies.dat"),
        r"movies.dat:3: duplicate item id '10' \(first on line 1\)",
    )


# ---- 5 and 10. items without text are counted and recorded --------------------------------------------
def test_items_without_text_are_counted_in_a_warning_and_the_coverage_recorded(tmp_path, caplog):
    items = (
        '{"asin": "A", "title": "Lamp"}\n'
        '{"asin": "B", "title": null}\n'  # null title
        '{"asin": "C"}\n'  # no title
        '{"asin": "E", "title": ""}\n'  # empty title
        '{"asin": "Z", "title": "Not in any sequence"}\n'
    )
    write_p5(tmp_path, sequences="U1 A B C D\nU2 E F G H I J K\n", items=items)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("fx", p5(tmp_path), cache_dir=tmp_path / "cache")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{tmp_path / 'raw/items.jsonl'}: 10 of 11 items have no title (they get an empty one): "
        "7 are absent from the file (e.g. 'D', 'F', 'G', 'H', 'I'), "
        "3 have a missing, null or empty title (e.g. 'B', 'C', 'E')"
    ]
    assert ds.stats()["item_text_coverage"] == pytest.approx(1 / 11)
    assert text_coverage(ds.item_text) == pytest.approx(1 / 11)
    no_text = load_dataset("fx2", p5(tmp_path, items=None), cache_dir=tmp_path / "cache")
    assert text_coverage(no_text.item_text) is None  # no item-text file: no coverage to report

    row = {
        "name": "fx",
        "fingerprint": "f",
        "preprocessing_version": "1",
        "users": 2,
        "items": 11,
        "interactions": 11,
        "eval_users": 2,
    }
    assert DatasetInfo.model_validate(row).item_text_coverage is None  # rows written before the field
    assert DatasetInfo.model_validate({**row, "item_text_coverage": 1 / 11}).item_text_coverage == 1 / 11


# ---- 6. ESCI: columns, query ids, labels ---------------------------------------------------------------
def write_esci_150(
    root: Path, examples: str | bytes | None = None, products: str | bytes | None = None
) -> None:
    write(
        root / ESCI_EXAMPLES,
        examples
        if examples is not None
        else ESCI_HEADER
        + "\n7,red lamp,P1,us,E,100,none\n7,red lamp,P2,us,I,0,none\n12,mug,P2,us,S,10,none\n",
    )
    write(
        root / ESCI_PRODUCTS,
        products
        if products is not None
        else '{"asin": "P1", "title": "Lamp"}\n{"asin": "P2", "title": "Mug"}\n',
    )


def write_official(
    root: Path, examples: pd.DataFrame | None = None, products: pd.DataFrame | None = None
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    ex = pd.DataFrame(
        {
            "example_id": [0, 1, 2],
            "query": ["red lamp", "red lamp", "mug"],
            "query_id": [7, 7, 12],
            "product_id": ["P1", "P2", "P2"],
            "product_locale": ["us"] * 3,
            "esci_label": ["E", "I", "S"],
            "small_version": [1, 1, 1],
            "large_version": [1, 1, 1],
            "split": ["test"] * 3,
        }
    )
    pr = pd.DataFrame(
        {"product_id": ["P1", "P2"], "product_title": ["Lamp", "Mug"], "product_locale": ["us", "us"]}
    )
    (examples if examples is not None else ex).to_parquet(root / OFFICIAL_FILES["examples"], index=False)
    (products if products is not None else pr).to_parquet(root / OFFICIAL_FILES["products"], index=False)


def test_esci_examples_errors_name_file_line_and_field(tmp_path):
    good = ESCI_HEADER + "\n7,red lamp,P1,us,E,100,none\n7,red lamp,P2,us,I,0,none\n12,mug,P2,us,S,10,none\n"
    cases = [
        (
            good.replace("product_locale,", "").replace(",us,", ","),
            r"derived_opensearch150_examples_us.csv.gz: missing required column\(s\) \['product_locale'\]",
        ),
        (
            good.replace("12,mug", "q12,mug"),
            r"csv.gz:4: field 'query_id' \(column 1\): expected an integer, got 'q12'",
        ),
        (
            good.replace("P2,us,I", "P2,us,X"),
            r"csv.gz:3: field 'esci_label' \(column 5\): expected one of \['E', 'S', 'C', 'I'\], got 'X'",
        ),
    ]
    for i, (examples, match) in enumerate(cases):
        root = tmp_path / f"case{i}"
        write_esci_150(root, examples=examples)
        err = search_load_fails(tmp_path, ESCI150Source(str(root)), match)
        assert str(err).startswith(str(root / ESCI_EXAMPLES))

    ex = pd.read_parquet(_official(tmp_path / "ok") / OFFICIAL_FILES["examples"])
    pr = pd.read_parquet(tmp_path / "ok" / OFFICIAL_FILES["products"])
    official = [
        (
            ex.drop(columns="product_locale"),
            None,
            r"examples.parquet: missing required column\(s\) \['product_locale'\]",
        ),
        (
            None,
            pr.drop(columns="product_locale"),
            r"products.parquet: missing required column\(s\) \['product_locale'\]",
        ),
        (
            ex.astype({"query_id": str}).replace({"query_id": {"12": "q12"}}),
            None,
            r"examples.parquet: row 3: field 'query_id': expected an integer, got 'q12'",
        ),
        (
            ex.replace({"esci_label": {"I": "X"}}),
            None,
            r"examples.parquet: row 2: field 'esci_label': expected one of \['E', 'S', 'C', 'I'\], got 'X'",
        ),
    ]
    for i, (examples, products, match) in enumerate(official):
        root = tmp_path / f"official{i}"
        write_official(root, examples, products)
        search_load_fails(tmp_path, ESCIOfficialSource(str(root)), match)


def _official(root: Path) -> Path:
    write_official(root)
    return root


# ---- 7. stats cards for search datasets ----------------------------------------------------------------
def test_stats_prints_a_card_for_a_search_dataset(capsys):
    from recbench.data.__main__ import main

    assert main(["stats", "data=search_synthetic"]) == 0
    text = capsys.readouterr().out
    for line in ("dataset        search_synthetic", "queries        20", "task           product search"):
        assert line in text
    assert re.search(r"labels         E \d+ \(\d+\.\d%\) · S \d+", text)
    assert re.search(r"fingerprint    [0-9a-f]{64}", text)
    assert main(["stats", "--json", "data=search_synthetic"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["queries"] == 20 and set(card["labels"]) == {"E", "S", "C", "I"}
    assert {"products", "judgements", "fingerprint", "product_text_coverage", "source_sha256"} <= set(card)


@pytest.mark.data
def test_stats_card_for_the_real_esci_150_set(real_data_dir, capsys):
    from recbench.data.__main__ import main

    if not (real_data_dir / "esci").is_dir():
        pytest.skip("esci/ absent from RECBENCH_DATA_DIR")
    assert main(["stats", "data=esci_us_150", f"paths.data_dir={real_data_dir}"]) == 0
    text = capsys.readouterr().out
    for line in ("queries        150", "products       6,764", "judgements     6,678"):
        assert line in text
    assert "E 3,389" in text


# ---- 8. the documented checksum bypass -----------------------------------------------------------------
def documented_bypass(config: Path) -> list[str]:
    return re.findall(r"data\.sha256=\S+", config.read_text())


def test_documented_checksum_bypass_skips_the_check(tmp_path):
    documented = {o for f in Path(CONF_DIR, "data").glob("*.yaml") for o in documented_bypass(f)}
    assert documented == {"data.sha256=null"}, "every dataset config documents the same, working override"
    root = tmp_path / "movielens_100k/raw"
    write(root / "u.data.gz", "".join(f"{u}\t{i}\t5\t{u * 10 + i}\n" for u in (1, 2) for i in range(1, 6)))
    write(root / "u.item.gz", "".join(f"{i}|Film {i}|01-Jan-1995||x" + "|0" * 19 + "\n" for i in range(1, 6)))
    base = [
        "data=ml_100k",
        f"paths.data_dir={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.expected_stats=null",
        "data.fingerprint=null",  # other data: the canonical content pin would refuse it too
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        pinned = compose("config", overrides=[*base, "paths.output_dir=."])
        with pytest.raises(InstantiationException) as info:  # Hydra wraps the error: check its cause
            instantiate(pinned.data)
        assert isinstance(info.value.__cause__, DataError)
        assert "override data.sha256=null" in str(info.value.__cause__)  # the error says the same override
        assert cache_entries(tmp_path / "cache", "ml_100k") == []
        # why the old advice did nothing: Hydra merges an empty dict into the pins
        assert dict(compose("config", overrides=[*base, "data.sha256={}"]).data.sha256) == dict(
            pinned.data.sha256
        )
        bypass = compose("config", overrides=[*base, "data.sha256=null", "paths.output_dir=."])
        assert instantiate(bypass.data).num_users == 2
        deleted = compose("config", overrides=[*base, "~data.sha256", "paths.output_dir=."])
        assert instantiate(deleted.data).num_users == 2
        # one file unpinned, the other still checked
        one = compose("config", overrides=[*base, "data.sha256.ratings=null", "paths.output_dir=."])
        with pytest.raises(InstantiationException, match=r"u.item.gz: sha256 is"):
            instantiate(one.data)


# ---- 9. a writer killed inside the cache save ----------------------------------------------------------
KILLED_SAVE = """
import os, signal, sys
import pyarrow.parquet as pq
from recbench.data.amazon import P5SequenceSource
from recbench.data.dataset import load_dataset

write_table = pq.write_table
def write_then_die(table, where, **kw):  # the writer dies after its first file, inside save_dataset
    write_table(table, where, **kw)
    os.kill(os.getpid(), signal.SIGKILL)
pq.write_table = write_then_die
root, cache = sys.argv[1:]
load_dataset("fx", P5SequenceSource(root, "raw/user_sequence.txt", "raw/items.jsonl"), cache_dir=cache)
"""


def test_temp_folder_of_a_killed_writer_is_removed_by_the_next_load(tmp_path):
    write_p5(tmp_path)
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE, str(tmp_path), str(cache)],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    orphans = [p for p in cache_entries(cache, "fx") if p.startswith(".")]
    assert len(orphans) == 1 and (cache / "fx" / orphans[0] / "interactions.parquet").exists()

    ds = load_dataset("fx", p5(tmp_path), cache_dir=cache)
    key = ds.meta["cache_key"]
    assert cache_entries(cache, "fx") == [key], "the dead writer's temp folder is gone, the cache is built"
    assert orphans[0].startswith(f".{key}.")
    fresh = load_dataset("fx", p5(tmp_path), cache_dir=tmp_path / "fresh")
    assert ds.fingerprint() == fresh.fingerprint()

    # an orphan next to a finished copy (a writer killed while another copy already existed) goes too
    (cache / "fx" / f".{key}.x1y2z3").mkdir()
    (cache / "fx" / f".{key}.x1y2z3" / "meta.json").write_text("{")
    (cache / "fx" / f".{key}x.not-ours").mkdir()  # another key's name: not touched
    again = load_dataset("fx", p5(tmp_path), cache_dir=cache)
    assert again.fingerprint() == ds.fingerprint()
    assert cache_entries(cache, "fx") == [f".{key}x.not-ours", key]
