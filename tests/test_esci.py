"""ESCI readers: the official parquet schema (on hand-written fixtures), the 150-query files, the
download (from a local HTTP server), and the real 150-query set when present."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbench.data.download import DownloadError
from recbench.data.esci import (
    OFFICIAL_FILES,
    ESCI150Source,
    ESCIOfficialSource,
    download,
    load_search_dataset,
)
from recbench.errors import RefusedError

# Official schema (amazon-science/esci-data, shopping_queries_dataset/): hand-written rows.
EXAMPLES = pd.DataFrame(
    [
        # example_id, query, query_id, product_id, product_locale, esci_label, small, large, split
        (0, "red lamp", 7, "B000000003", "us", "E", 1, 1, "test"),
        (1, "red lamp", 7, "B000000001", "us", "I", 1, 1, "test"),
        (2, "red lamp", 7, "B000000002", "us", "S", 1, 1, "test"),
        (3, "blue mug", 12, "B000000004", "us", "C", 1, 1, "test"),
        (4, "blue mug", 12, "B000000005", "us", "E", 1, 1, "test"),
        (5, "green kettle", 3, "B000000001", "us", "E", 0, 1, "test"),  # large version only
        (6, "tent", 20, "B000000004", "us", "E", 1, 1, "train"),  # train split
        (7, "lámpara roja", 30, "B0000000ES", "es", "E", 1, 1, "test"),  # other locale
    ],
    columns=[
        "example_id",
        "query",
        "query_id",
        "product_id",
        "product_locale",
        "esci_label",
        "small_version",
        "large_version",
        "split",
    ],
)
PRODUCTS = pd.DataFrame(
    {
        "product_id": [
            "B000000001",
            "B000000002",
            "B000000003",
            "B000000004",
            "B000000005",
            "B000000006",
            "B0000000ES",
        ],
        "product_title": [
            "Kettle",
            "Red desk lamp",
            "Red lamp, LED",
            "Blue tray",
            "Blue mug 12oz",
            "Sofa",
            "Lámpara",
        ],
        "product_description": ["<b>steel</b>", None, "", "", "", "", ""],
        "product_bullet_point": ["boils\nfast", "", "bright", "", "ceramic", "", ""],
        "product_brand": ["Acme", "Lumo", "Lumo", None, "Cupz", "Sofaco", "Luz"],
        "product_color": ["", "red", "red", "blue", "blue", "grey", "rojo"],
        "product_locale": ["us"] * 6 + ["es"],
    }
)


def write_official(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    EXAMPLES.astype(
        {c: "int64" for c in ["example_id", "query_id", "small_version", "large_version"]}
    ).to_parquet(folder / OFFICIAL_FILES["examples"], index=False)
    PRODUCTS.to_parquet(folder / OFFICIAL_FILES["products"], index=False)


def test_official_reader_filters_and_orders(tmp_path):
    write_official(tmp_path)
    ds = load_search_dataset("esci_us_small_test", ESCIOfficialSource(str(tmp_path)))
    assert ds.query_ids.tolist() == ["7", "12"]  # numeric query_id order, not "12" < "7"
    assert ds.queries.tolist() == ["red lamp", "blue mug"]
    assert ds.num_products == 6  # every US product is in the retrieval corpus
    assert list(ds.product_ids) == sorted(ds.product_ids)
    # judged lists are in product_id order (the source order carried the labels)
    red = ds.judged(0)
    assert [ds.product_ids[p] for p in ds.candidates(0)] == ["B000000001", "B000000002", "B000000003"]
    assert {ds.product_ids[p]: lab for p, lab in red.items()} == {
        "B000000001": "I",
        "B000000002": "S",
        "B000000003": "E",
    }
    text = ds.product_text.iloc[2]
    assert text["title"] == "Red lamp, LED" and text["brand"] == "Lumo" and text["bullets"] == "bright"
    assert ds.product_text.iloc[3]["brand"] == ""  # None -> ""
    assert set(ds.meta["source_sha256"]) == {"examples", "products"}


def test_official_reader_options(tmp_path):
    write_official(tmp_path)
    large = load_search_dataset("x", ESCIOfficialSource(str(tmp_path), version="large"))
    assert large.queries.tolist() == ["green kettle", "red lamp", "blue mug"]
    train = load_search_dataset("x", ESCIOfficialSource(str(tmp_path), split="train"))
    assert train.queries.tolist() == ["tent"]
    judged = load_search_dataset("x", ESCIOfficialSource(str(tmp_path), corpus="judged"))
    assert judged.num_products == 5
    es = load_search_dataset("x", ESCIOfficialSource(str(tmp_path), locale="es"))
    assert es.num_products == 1 and es.queries.tolist() == ["lámpara roja"]
    with pytest.raises(ValueError, match="no examples"):
        load_search_dataset("x", ESCIOfficialSource(str(tmp_path), locale="jp"))
    with pytest.raises(ValueError, match="version"):
        ESCIOfficialSource(str(tmp_path), version="medium")


def test_missing_files_and_checksums(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"recbench\.data\.esci download"):
        load_search_dataset("x", ESCIOfficialSource(str(tmp_path)))
    write_official(tmp_path)
    with pytest.raises(ValueError, match="sha256 is"):
        load_search_dataset("x", ESCIOfficialSource(str(tmp_path)), sha256={"examples": "0" * 64})
    with pytest.raises(ValueError, match="expected statistics"):
        load_search_dataset("x", ESCIOfficialSource(str(tmp_path)), expected_stats={"queries": 3})


def write_150(folder: Path) -> None:
    raw = folder / "raw"
    raw.mkdir(parents=True)
    ex = pd.DataFrame(
        {
            "query_id": ["100064", "100064", "100064", "995"],
            "query": ["t towels kitchen"] * 3 + ["red paddle board"],
            "product_id": ["B07NCQWCQS", "B07NPC54DK", "B00AAAAAAA", "B00AAAAAAA"],
            "product_locale": ["us"] * 4,
            "esci_label": ["E", "E", "I", "S"],
            "source_rating": ["100.000", "100.000", "0.000", "10.000"],
            "split_evidence": ["merge_us_test"] * 3 + ["none"],
        }
    )
    with gzip.open(raw / "derived_opensearch150_examples_us.csv.gz", "wt") as f:
        ex.to_csv(f, index=False)
    products = [
        {
            "asin": "B07NCQWCQS",
            "title": "Kitchen towels",
            "description": "",
            "bullet_points": "soft\nabsorbent",
            "brand": "Utopia",
            "color": None,
            "query_id": ["100064"],
        },
        {
            "asin": "B07NPC54DK",
            "title": "Tea towels",
            "description": "cotton",
            "bullet_points": "",
            "brand": "Zeppoli",
            "color": "White",
            "query_id": ["100064"],
        },
        {
            "asin": "B00AAAAAAA",
            "title": "Paddle board",
            "description": "",
            "bullet_points": "",
            "brand": None,
            "color": "Red",
            "query_id": ["100064", "995"],
        },
        {
            "asin": "B00UNJUDGE",
            "title": "Spare fin",
            "description": "",
            "bullet_points": "",
            "brand": "X",
            "color": None,
            "query_id": [],
        },
    ]
    with gzip.open(raw / "opensearch_ubi_ecommerce_products.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(p) for p in products) + "\n")


def test_150_reader(tmp_path):
    write_150(tmp_path)
    ds = load_search_dataset("esci_us_150", ESCI150Source(str(tmp_path)))
    assert ds.stats() == {
        "queries": 2,
        "judgements": 4,
        "products": 4,
        "labels": {"E": 2, "S": 1, "C": 0, "I": 1},
    }
    assert ds.queries.tolist() == ["red paddle board", "t towels kitchen"]  # query_id 995 < 100064
    p = list(ds.product_ids).index("B07NCQWCQS")
    assert ds.product_text.iloc[p]["bullets"] == "soft\nabsorbent" and ds.product_text.iloc[p]["color"] == ""
    known = load_search_dataset("x", ESCI150Source(str(tmp_path), known_test_only=True))
    assert known.queries.tolist() == ["t towels kitchen"]


def test_download_from_local_server(tmp_path):
    served = tmp_path / "served"
    write_official(served)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        pins = {k: hashlib.sha256((served / f).read_bytes()).hexdigest() for k, f in OFFICIAL_FILES.items()}
        digest = pins["examples"]
        with pytest.raises(RefusedError, match="no checksum is pinned"):  # trusts nothing on first use
            download(tmp_path / "dest", url, sha256={"examples": digest})
        got = download(tmp_path / "dest", url, sha256=pins)
        assert got["examples"].read_bytes() == (served / OFFICIAL_FILES["examples"]).read_bytes()
        assert digest in (tmp_path / "dest" / "SHA256SUMS").read_text()
        ds = load_search_dataset("x", ESCIOfficialSource(str(tmp_path / "dest")))
        assert ds.num_queries == 2
        assert download(tmp_path / "open", url, allow_unverified=True)["products"].is_file()
        with pytest.raises(DownloadError, match="sha256 is"):
            download(tmp_path / "bad", url, sha256={**pins, "products": "0" * 64})
        assert not (tmp_path / "bad" / OFFICIAL_FILES["products"]).exists()  # nothing half-checked kept
        assert not [p for p in (tmp_path / "bad").iterdir() if p.name.startswith(".")]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.data
def test_real_150_set(real_data_dir):
    if not (real_data_dir / "esci").is_dir():
        pytest.skip("esci/ absent from RECBENCH_DATA_DIR")
    ds = load_search_dataset(
        "esci_us_150",
        ESCI150Source(str(real_data_dir / "esci")),
        sha256={
            "examples": "fa942ff05c876b37f4afbce2857a0f13a6eb30b2b4ec212a5340a0eb48c631e5",
            "products": "cfd3b04e069033fa1561e2985260c83a3cb8344ee549754edfd0574a4aa14a49",
        },
    )
    assert ds.stats() == {
        "queries": 150,
        "judgements": 6678,
        "products": 6764,
        "labels": {"E": 3389, "S": 1898, "C": 305, "I": 1086},
    }
    assert (ds.product_text["title"].str.len() > 0).all()
    assert all(any(lab == "E" for lab in ds.judged(q).values()) for q in range(ds.num_queries))
    assert np.all(np.diff(ds.offsets) >= 40)
    assert (
        ds.num_queries
        - load_search_dataset(
            "x", ESCI150Source(str(real_data_dir / "esci"), known_test_only=True)
        ).num_queries
        == 10
    )
