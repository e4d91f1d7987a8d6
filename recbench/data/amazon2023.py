"""Amazon Reviews 2023 (Hou et al., "Bridging Language and Items for Retrieval and Recommendation",
arXiv:2403.03952 — BLaIR), through Hugging Face ``datasets``.

Reads the authors' benchmark files from the hub repository ``McAuley-Lab/Amazon-Reviews-2023``:

* ``benchmark/5core/timestamp/<Category>.{train,valid,test}.csv`` — the 5-core interactions, split by
  absolute timestamp (header ``user_id,parent_asin,rating,timestamp``, timestamps in milliseconds);
* ``raw/meta_categories/meta_<Category>.jsonl`` — item metadata keyed by ``parent_asin``.

The three splits are joined back into one chronological log (the split the authors made is kept in
``meta["official_split"]`` as its two timestamp cut points, so ``protocol=global_temporal`` can use them).
Timestamps are stored in seconds (floored), after ordering by the original milliseconds.

Files come from the hub (``huggingface_hub.hf_hub_download``, pinned ``revision``) unless ``root`` points
at a local copy with the same layout. Parsing goes through ``datasets.load_dataset("csv" | "json")``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from recbench.data.amazon import join_categories
from recbench.data.dataset import SequenceDataset
from recbench.data.download import ensure_files
from recbench.data.interactions import build_from_log
from recbench.data.parsing import Field, check_columns, scan_text
from recbench.errors import DataError

log = logging.getLogger(__name__)

REPO_ID = "McAuley-Lab/Amazon-Reviews-2023"
SPLITS = ("train", "valid", "test")
INTERACTION_FIELDS = [Field("user_id"), Field("parent_asin"), Field("timestamp", pl.Int64)]
INTERACTION_KNOWN = ("rating", "history")
META_FIELDS = ("title", "categories", "store", "main_category", "features", "description", "details")
META_KNOWN = (
    "parent_asin",
    "average_rating",
    "rating_number",
    "price",
    "images",
    "videos",
    "bought_together",
    "subtitle",
    "author",
)


class Amazon2023Source:
    """One category of Amazon Reviews 2023, 5-core, timestamp split.

    Args:
        category: hub category name, e.g. ``Toys_and_Games``, ``Sports_and_Outdoors``,
            ``Beauty_and_Personal_Care``.
        root: a local folder with the hub layout (overrides the hub; what tests and offline users use).
        revision: hub commit the files are pinned to.
        text_fields: item-text columns from the metadata (lists are joined; ``categories`` with ' > ').
        cache_dir: where ``datasets`` keeps its Arrow cache (default: its own).
    """

    HOWTO = (
        f"These are the Amazon Reviews 2023 benchmark files of the hub dataset {REPO_ID} "
        "(benchmark/5core/timestamp/ and raw/meta_categories/)."
    )

    def __init__(
        self,
        category: str,
        root: str | None = None,
        repo_id: str = REPO_ID,
        revision: str | None = None,
        kcore: str = "5core",
        split_scheme: str = "timestamp",
        text_fields: Sequence[str] = ("title", "categories"),
        user_core: int = 0,
        item_core: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        unknown = sorted(set(text_fields) - set(META_FIELDS))
        if unknown:
            raise ValueError(f"text_fields {unknown} unknown; the 2023 metadata offers {META_FIELDS}")
        self.category, self.repo_id, self.revision = category, repo_id, revision
        self.root = Path(root).expanduser() if root else None
        self.kcore, self.split_scheme = kcore, split_scheme
        self.text_fields = list(text_fields)
        self.user_core, self.item_core = user_core, item_core
        self.cache_dir = cache_dir

    def relative_files(self) -> dict[str, str]:
        base = f"benchmark/{self.kcore}/{self.split_scheme}/{self.category}"
        files = {split: f"{base}.{split}.csv" for split in SPLITS}
        files["meta"] = f"raw/meta_categories/meta_{self.category}.jsonl"
        return files

    def files(self) -> dict[str, Path]:
        rel = self.relative_files()
        if self.root is not None:
            return ensure_files(
                self.category, self.root, {k: self.root / v for k, v in rel.items()}, None, self.HOWTO
            )
        from huggingface_hub import hf_hub_download

        return {
            k: Path(hf_hub_download(self.repo_id, v, repo_type="dataset", revision=self.revision))
            for k, v in rel.items()
        }

    def _load(self, kind: str, path: Path) -> Any:
        """``datasets.load_dataset(kind)`` of one file. Its errors name neither file nor line (a byte that
        is not UTF-8 surfaces as a bare decode error deep in the generator): on failure the file is
        scanned for the line to name, and the original error is raised when the scan finds nothing."""
        import datasets

        try:
            return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=self.cache_dir)
        except Exception:
            scan_text(path)
            raise

    def read(self, name: str) -> SequenceDataset:
        files = self.files()
        parts = []
        for split in SPLITS:
            table = self._load("csv", files[split]).data.table
            check_columns(files[split], table.column_names, INTERACTION_FIELDS, INTERACTION_KNOWN)
            df = pl.from_arrow(table.select([f.name for f in INTERACTION_FIELDS]))
            assert isinstance(df, pl.DataFrame)
            _require_non_null(df, files[split])
            parts.append(df.with_columns(pl.lit(split).alias("split")))
        log_df = pl.concat(parts).rename({"user_id": "user", "parent_asin": "item"})
        starts = log_df.group_by("split").agg(pl.col("timestamp").min())
        cuts = {f"{s}_start_ms": int(t) for s, t in zip(starts["split"], starts["timestamp"], strict=True)}
        wanted = set(log_df.get_column("item").unique().to_list())
        text = self.read_meta(files["meta"], wanted)
        meta = {
            "official_split": {
                "scheme": f"{self.kcore}/{self.split_scheme}",
                "val_start": cuts.get("valid_start_ms", cuts.get("test_start_ms", 0)) // 1000,
                "test_start": cuts.get("test_start_ms", 0) // 1000,
                "rows": {s: p.height for s, p in zip(SPLITS, parts, strict=True)},
            },
            "hub": {"repo_id": self.repo_id, "revision": self.revision} if self.root is None else None,
        }
        ds = build_from_log(
            name, log_df, text, self.user_core, self.item_core, meta=meta, text_file=files["meta"]
        )
        assert ds.timestamps is not None
        ds.timestamps = ds.timestamps // 1000  # ordered by milliseconds above; stored as unix seconds
        return ds

    def read_meta(self, path: Path, wanted: set[str]) -> pd.DataFrame:
        table = self._load("json", path)
        cols = table.column_names
        check_columns(
            path, cols, [Field("parent_asin"), *(Field(f, required=False) for f in META_FIELDS)], META_KNOWN
        )
        keep = ["parent_asin", *(f for f in self.text_fields if f in cols)]
        df = table.select_columns(keep).to_pandas()
        df = df[df["parent_asin"].isin(wanted)].drop_duplicates("parent_asin")
        out = pd.DataFrame(index=pd.Index(df["parent_asin"].astype(str), name="item_id"))
        for f in self.text_fields:
            values = df[f].tolist() if f in df else [None] * len(df)
            out[f] = [_text(f, v) for v in values]
        return out


def _text(field: str, value: object) -> str:
    if isinstance(value, np.ndarray):  # list columns arrive as arrays from Arrow
        value = value.tolist()
    if value is None:
        return ""
    if field == "categories" and isinstance(value, list | tuple):
        return join_categories(list(value))
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _require_non_null(df: pl.DataFrame, path: Path) -> None:
    for col in df.columns:
        nulls = df.get_column(col).is_null()
        if nulls.any():
            row = int(nulls.arg_true()[0])
            raise DataError(f"{path}:{row + 2}: field {col!r} is empty")  # +1 header, +1 one-based
