"""Amazon ESCI Shopping Queries (Reddy et al., "Shopping Queries Dataset: A Large-Scale ESCI Benchmark
for Improving Product Search", 2022): queries, products and graded judgements (E/S/C/I).

Two readers, one canonical form (:class:`SearchDataset`):

* :class:`ESCIOfficialSource` — the official release, ``shopping_queries_dataset_examples.parquet`` +
  ``shopping_queries_dataset_products.parquet`` (amazon-science/esci-data), filtered by locale,
  small/large version and split. Benchmark names say which slice, e.g. ``esci_us_small_test``.
  :func:`download` fetches the files (any base URL: the esci-data repository's LFS files or a mirror)
  and checks their sha256.
* :class:`ESCI150Source` — the 150-query US set in ``$RECBENCH_DATA_DIR/esci`` (OpenSearch's ESCI query
  and judgement set + official product text; see its SOURCE.md). **A non-random subset** (queries with
  >= 40 judgements): its scores are comparable only with other runs on the same set. Benchmark name
  ``esci_us_150``.

Canonical order: products are sorted by ``product_id`` and queries by ``query_id``, so that no index
carries label information (the 150-query file lists each query's E products first; a ranker that broke
ties by input order would otherwise be rewarded for it).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import polars as pl

from recbench.data.amazon import missing_files_error
from recbench.data.dataset import check_sha256, sha256_file
from recbench.data.download import RemoteFile, fetch
from recbench.data.parsing import Field, iter_json_objects, read_delimited, read_parquet
from recbench.errors import DataError
from recbench.results.schema import atomic_write_text

log = logging.getLogger(__name__)

# Bump on any change to how ESCI sources become a SearchDataset (filters, ordering, text fields).
PREPROCESSING_VERSION = "1"
LABELS = ("E", "S", "C", "I")
TEXT_FIELDS = ("title", "brand", "color", "bullets", "description")

OFFICIAL_FILES = {
    "examples": "shopping_queries_dataset_examples.parquet",
    "products": "shopping_queries_dataset_products.parquet",
}
# The official repository keeps the parquet files in Git LFS; this URL serves their content.
OFFICIAL_BASE_URL = (
    "https://media.githubusercontent.com/media/amazon-science/esci-data/main/shopping_queries_dataset/"
)
# Official product columns -> canonical text fields.
OFFICIAL_TEXT_COLUMNS = {
    "product_title": "title",
    "product_brand": "brand",
    "product_color": "color",
    "product_bullet_point": "bullets",
    "product_description": "description",
}
# The columns every examples file has (official parquet and the 150-query csv): query ids are integers
# (their numeric order is the canonical query order), labels one of E/S/C/I.
EXAMPLE_FIELDS = (
    Field("query_id", pl.Int64),
    Field("query"),
    Field("product_id"),
    Field("product_locale"),
    Field("esci_label", choices=LABELS),
)


@dataclass
class SearchDataset:
    """Queries, a product corpus with text, and each query's judged products with their labels.

    Judgements are CSR-style: query ``q`` judged ``products[offsets[q]:offsets[q+1]]`` with ``labels``
    at the same positions. Product indices point into ``product_ids`` / ``product_text`` (the corpus).
    """

    name: str
    query_ids: np.ndarray  # (Q,) str
    queries: np.ndarray  # (Q,) str, the query text
    product_ids: np.ndarray  # (P,) str, sorted
    product_text: pd.DataFrame  # index = product index, str columns (title, brand, bullets, ...)
    offsets: np.ndarray  # (Q + 1,) int64
    judged_products: np.ndarray  # (J,) int32 product index
    labels: np.ndarray  # (J,) str, one of E/S/C/I
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_queries(self) -> int:
        return len(self.query_ids)

    @property
    def num_products(self) -> int:
        return len(self.product_ids)

    @property
    def num_judgements(self) -> int:
        return len(self.labels)

    def judged(self, q: int) -> dict[int, str]:
        """product index -> label for query ``q``."""
        s, e = self.offsets[q], self.offsets[q + 1]
        return dict(zip(self.judged_products[s:e].tolist(), self.labels[s:e].tolist(), strict=True))

    def candidates(self, q: int) -> np.ndarray:
        return self.judged_products[self.offsets[q] : self.offsets[q + 1]]

    def stats(self) -> dict[str, Any]:
        counts = pd.Series(self.labels).value_counts()
        return {
            "queries": self.num_queries,
            "judgements": self.num_judgements,
            "products": self.num_products,
            "labels": {lab: int(counts.get(lab, 0)) for lab in LABELS},
        }

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"recbench-search-v1\0")
        for ids in (self.query_ids, self.queries, self.product_ids, self.labels):
            h.update("\n".join(map(str, ids)).encode())
            h.update(b"\0")
        for arr in (self.offsets, self.judged_products):
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        return h.hexdigest()

    @classmethod
    def from_frames(
        cls, name: str, examples: pd.DataFrame, products: pd.DataFrame, meta: dict[str, Any] | None = None
    ) -> SearchDataset:
        """Build from ``examples`` (query_id, query, product_id, esci_label) and ``products``
        (product_id + text fields). Every judged product must be in ``products``."""
        bad = sorted(set(examples["esci_label"]) - set(LABELS))
        if bad:
            raise DataError(f"{name}: esci_label values {bad}; expected one of {list(LABELS)}")
        dup = examples.duplicated(["query_id", "product_id"])
        if dup.any():
            first = examples[dup].iloc[0]
            raise DataError(
                f"{name}: {int(dup.sum())} duplicate (query_id, product_id) judgements, "
                f"e.g. ({first['query_id']}, {first['product_id']})"
            )
        products = products.drop_duplicates("product_id").sort_values("product_id", kind="stable")
        product_ids = products["product_id"].astype(str).to_numpy(dtype=object)
        index = pd.Series(np.arange(len(product_ids)), index=product_ids)
        missing = sorted(set(examples["product_id"].astype(str)) - set(product_ids))
        if missing:
            raise DataError(f"{name}: {len(missing)} judged products have no product row, e.g. {missing[:3]}")
        text = pd.DataFrame(
            {f: products[f].fillna("").astype(str).to_numpy() if f in products else "" for f in TEXT_FIELDS}
        )
        ex = examples.assign(_qkey=_sort_key(examples["query_id"])).sort_values(
            ["_qkey", "product_id"], kind="stable"
        )
        queries = ex.drop_duplicates("query_id")
        qtext = queries.groupby("query_id", sort=False)["query"].nunique()
        if (qtext > 1).any():
            raise DataError(f"{name}: query_id {qtext[qtext > 1].index[0]} has several query strings")
        sizes = ex.groupby("_qkey", sort=True).size().to_numpy()
        return cls(
            name=name,
            query_ids=queries["query_id"].astype(str).to_numpy(dtype=object),
            queries=queries["query"].astype(str).to_numpy(dtype=object),
            product_ids=product_ids,
            product_text=text,
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            judged_products=index.loc[ex["product_id"].astype(str)].to_numpy().astype(np.int32),
            labels=ex["esci_label"].astype(str).to_numpy(dtype=object),
            meta=dict(meta or {}),
        )


def _sort_key(ids: pd.Series) -> pd.Series:
    """Numeric order when every id is an integer (official query_ids are), else string order."""
    numeric = pd.to_numeric(ids, errors="coerce")
    return numeric if not numeric.isna().any() else ids.astype(str)


class SearchSource(Protocol):
    def files(self) -> dict[str, Path]: ...

    def read(self, name: str) -> SearchDataset: ...


class _ExamplesAndProducts:
    """A search source read from one examples file and one products file under ``root``."""

    root: Path
    examples_file: Path
    products_file: Path
    HOWTO: str

    def files(self) -> dict[str, Path]:
        files = {"examples": self.examples_file, "products": self.products_file}
        missing = [p for p in files.values() if not p.is_file()]
        if missing:
            raise missing_files_error(self.root.name, self.root, missing, self.HOWTO)
        return files


class ESCIOfficialSource(_ExamplesAndProducts):
    """The official ESCI release (schema of amazon-science/esci-data ``shopping_queries_dataset/``).

    Args:
        locale: ``us``, ``es`` or ``jp`` (``product_locale``).
        version: ``small`` (task 1, the reduced set) or ``large`` (tasks 2 and 3).
        split: ``train`` or ``test``.
        corpus: ``locale`` (every product of the locale: the retrieval corpus) or ``judged`` (only the
            products judged for the selected queries).
    """

    HOWTO = (
        "Download them with `python -m recbench.data.esci download --dest <root>` (the esci-data "
        "repository's release files), or copy them from the Hugging Face hub mirror of the release."
    )

    def __init__(
        self,
        root: str,
        locale: str = "us",
        version: str = "small",
        split: str = "test",
        corpus: str = "locale",
        examples_file: str = OFFICIAL_FILES["examples"],
        products_file: str = OFFICIAL_FILES["products"],
    ) -> None:
        if version not in ("small", "large"):
            raise ValueError(f"data.source.version: expected 'small' or 'large', got {version!r}")
        if split not in ("train", "test"):
            raise ValueError(f"data.source.split: expected 'train' or 'test', got {split!r}")
        if corpus not in ("locale", "judged"):
            raise ValueError(f"data.source.corpus: expected 'locale' or 'judged', got {corpus!r}")
        self.root = Path(root).expanduser()
        self.locale, self.version, self.split, self.corpus = locale, version, split, corpus
        self.examples_file, self.products_file = self.root / examples_file, self.root / products_file

    def read(self, name: str) -> SearchDataset:
        ex = read_parquet(
            self.examples_file,
            [*EXAMPLE_FIELDS, Field(f"{self.version}_version", pl.Int64), Field("split")],
            known=("example_id", "small_version", "large_version"),
        ).to_pandas()
        keep = (
            (ex["product_locale"] == self.locale)
            & (ex[f"{self.version}_version"] == 1)
            & (ex["split"] == self.split)
        )
        ex = ex[keep]
        if ex.empty:
            raise DataError(
                f"{self.examples_file}: no examples with product_locale={self.locale!r}, "
                f"{self.version}_version=1, split={self.split!r}"
            )
        products = read_parquet(
            self.products_file,
            [
                Field("product_id"),
                Field("product_locale"),
                *(Field(c, required=False) for c in OFFICIAL_TEXT_COLUMNS),
            ],
        ).to_pandas()
        products = products[products["product_locale"] == self.locale]
        if self.corpus == "judged":
            products = products[products["product_id"].isin(set(ex["product_id"]))]
        products = products.rename(columns=OFFICIAL_TEXT_COLUMNS)
        meta = {"locale": self.locale, "version": self.version, "split": self.split, "corpus": self.corpus}
        return SearchDataset.from_frames(name, ex, products, meta=meta)


class ESCI150Source(_ExamplesAndProducts):
    """The 150-query US set (``esci/raw`` in the shared data folder; see its SOURCE.md).

    Examples: ``derived_opensearch150_examples_us.csv.gz`` (query_id, query, product_id, product_locale,
    esci_label, source_rating, split_evidence). Products: ``opensearch_ubi_ecommerce_products.jsonl.gz``
    (asin, title, description, bullet_points, brand, color, ...); all 6,764 form the corpus.

    Args:
        known_test_only: keep only the 140 queries evidenced as official small-version test queries
            (``split_evidence != "none"``).
    """

    HOWTO = "See esci/SOURCE.md in the shared benchmark data folder for where these files come from."

    def __init__(
        self,
        root: str,
        examples_file: str = "raw/derived_opensearch150_examples_us.csv.gz",
        products_file: str = "raw/opensearch_ubi_ecommerce_products.jsonl.gz",
        known_test_only: bool = False,
    ) -> None:
        self.root = Path(root).expanduser()
        self.examples_file, self.products_file = self.root / examples_file, self.root / products_file
        self.known_test_only = known_test_only

    def read(self, name: str) -> SearchDataset:
        ex = read_delimited(
            self.examples_file,
            [*EXAMPLE_FIELDS, Field("split_evidence", required=self.known_test_only)],
            separator=",",
            header=True,
            quoted=True,
            known=("source_rating",),
        ).to_pandas()
        if self.known_test_only:
            ex = ex[ex["split_evidence"] != "none"]
        rows = []
        for _, p in iter_json_objects(self.products_file, required=["asin"]):
            rows.append(
                {
                    "product_id": p["asin"],
                    "title": p.get("title"),
                    "brand": p.get("brand"),
                    "color": p.get("color"),
                    "bullets": p.get("bullet_points"),
                    "description": p.get("description"),
                }
            )
        meta = {"locale": "us", "known_test_only": self.known_test_only, "corpus": "all products in file"}
        return SearchDataset.from_frames(name, ex, pd.DataFrame(rows), meta=meta)


def load_search_dataset(
    name: str,
    source: SearchSource,
    sha256: Mapping[str, str | None] | None = None,
    expected_stats: dict[str, int] | None = None,
) -> SearchDataset:
    """Read a search dataset, pinning source files by sha256 and checking its statistics.

    Not cached: the 150-query set reads in about a second, and the official parquet files are already
    a columnar form (reading them is dominated by the product text either way).
    """
    files = source.files()
    digests = {key: sha256_file(path) for key, path in sorted(files.items())}
    check_sha256(files, digests, sha256)
    ds = source.read(name)
    ds.meta.update(
        source=type(source).__name__,
        source_sha256=digests,
        preprocessing_version=PREPROCESSING_VERSION,
    )
    actual = {"queries": ds.num_queries, "judgements": ds.num_judgements, "products": ds.num_products}
    wrong = {k: (v, actual.get(k)) for k, v in (expected_stats or {}).items() if actual.get(k) != v}
    if wrong:
        detail = ", ".join(f"{k}: expected {e:,}, got {a}" for k, (e, a) in wrong.items())
        raise DataError(f"dataset {name!r} does not match its expected statistics ({detail})")
    return ds


def download(
    dest: str | os.PathLike[str],
    base_url: str = OFFICIAL_BASE_URL,
    sha256: dict[str, str | None] | None = None,
    timeout: float = 60.0,
    allow_unverified: bool = False,
) -> dict[str, Path]:
    """Fetch the two official parquet files into ``dest`` (temp file, checked, then renamed).

    Through :func:`recbench.data.download.fetch` (resumable, verified, renamed when complete).
    ``sha256`` maps the file keys of :data:`OFFICIAL_FILES` to expected digests; a mismatch deletes the
    download and raises :class:`~recbench.data.download.DownloadError`. A file without a digest is
    refused unless ``allow_unverified``; then its computed digest is logged and written to ``SHA256SUMS``
    so that it can be pinned.
    """
    folder = Path(dest).expanduser()
    out: dict[str, Path] = {}
    sums = []
    for key, filename in OFFICIAL_FILES.items():
        expected = (sha256 or {}).get(key)
        remote = RemoteFile(
            url=base_url.rstrip("/") + "/" + filename,
            filename=filename,
            checksum=f"sha256:{expected}" if expected else None,
            allow_unverified=allow_unverified,
        )
        out[key] = fetch(remote, folder, timeout=timeout)  # resumable, verified, renamed when complete
        digest = sha256_file(out[key])
        log.info("%s -> %s (sha256 %s)", remote.url, out[key], digest)
        sums.append(f"{digest}  {filename}")
    atomic_write_text(folder / "SHA256SUMS", "\n".join(sums) + "\n")
    return out


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m recbench.data.esci", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="fetch the official ESCI parquet files")
    d.add_argument("--dest", required=True)
    d.add_argument("--base-url", default=OFFICIAL_BASE_URL)
    d.add_argument(
        "--sha256",
        nargs=2,
        action="append",
        metavar=("KEY", "HEX"),
        default=[],
        help=f"pin a file's digest (keys: {', '.join(OFFICIAL_FILES)})",
    )
    d.add_argument("--allow-unverified", action="store_true", help="accept files without a pinned sha256")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    pins = dict(args.sha256)
    for key, path in download(args.dest, args.base_url, pins, allow_unverified=args.allow_unverified).items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    _main()
