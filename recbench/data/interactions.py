"""From a flat interaction log to the canonical :class:`SequenceDataset`, columnar end to end.

Every raw-log source (Amazon 2014 reviews, Amazon 2023 benchmark splits, MovieLens ratings) ends here,
so the rules that decide what a model sees are written once:

1. **k-core filtering, iterated to a fixed point**: drop users with fewer than ``user_core`` and items
   with fewer than ``item_core`` interactions, then again, until nothing changes. Counts are interaction
   counts (repeats included), as in S3-Rec's ``filter_Kcore``, whose output the P5/TIGER files are. The
   k-core is unique, so the order of removals does not matter.
2. **User order**: order of first appearance in the source file (S3-Rec/P5 build their user dict by
   reading the review file top to bottom).
3. **Chronological order within a user**: by timestamp, ties broken by position in the source file
   (a stable sort, as Python's ``list.sort`` in S3-Rec's ``get_interaction``).
4. **Item indices**: order of first appearance over the user-ordered sequences, the rule of
   :meth:`SequenceDataset.from_sequences` (S3-Rec and P5 ids), so a raw log and its preprocessed
   sequence file give the same indices.

Polars does the work: a 20M-row log is a handful of sorts and group-bys, never a Python loop over rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from recbench.data.dataset import SequenceDataset, align_item_text
from recbench.errors import DataError

log = logging.getLogger(__name__)


def k_core(log_df: pl.DataFrame, user_core: int, item_core: int) -> tuple[pl.DataFrame, int]:
    """Rows of ``log_df`` (columns ``user``, ``item``) in the (user_core, item_core)-core; and the number
    of passes it took. A core of 0 or 1 is no constraint."""
    passes = 0
    if user_core <= 1 and item_core <= 1:
        return log_df, passes
    while True:
        passes += 1
        before = log_df.height
        cond = pl.lit(True)
        if user_core > 1:
            cond = cond & (pl.len().over("user") >= user_core)
        if item_core > 1:
            cond = cond & (pl.len().over("item") >= item_core)
        log_df = log_df.filter(cond)
        if log_df.height == before:
            return log_df, passes


def build_from_log(
    name: str,
    log_df: pl.DataFrame,
    item_text: pd.DataFrame | None = None,
    user_core: int = 0,
    item_core: int = 0,
    meta: dict[str, Any] | None = None,
    text_file: Path | None = None,
) -> SequenceDataset:
    """Canonical dataset from an interaction log.

    Args:
        log_df: one row per interaction, in source-file order, columns ``user`` and ``item`` (any dtype;
            raw ids, turned into strings) and optionally ``timestamp`` (int64 unix seconds) — without it
            the file order is the chronological order (a pre-sorted sequence form).
        item_text: str columns indexed by raw item id (str), read from ``text_file``; items without
            text get empty strings (counted in a warning, see :func:`align_item_text`). An id repeated in
            ``item_text`` keeps its first row: the 2014 metadata files repeat some lines.
    """
    if log_df.height == 0:
        raise DataError(f"dataset {name!r}: the interaction log is empty: no users/sequences")
    has_ts = "timestamp" in log_df.columns
    # Ids keep their source dtype (MovieLens: integers) until the end: only the unique ids become strings.
    df = log_df.select(
        pl.col("user"),
        pl.col("item"),
        *([pl.col("timestamp").cast(pl.Int64)] if has_ts else []),
    ).with_row_index("row")
    rows_in = df.height
    df, passes = k_core(df, user_core, item_core)
    if df.height == 0:
        raise DataError(
            f"dataset {name!r}: nothing survives the ({user_core}, {item_core})-core filter "
            f"of {rows_in:,} interactions"
        )
    # Users by first appearance in the file; within a user, time then file position.
    df = df.with_columns(pl.col("row").min().over("user").alias("first_row"))
    df = df.sort(["first_row", "timestamp", "row"] if has_ts else ["first_row", "row"])
    user_ids = df.select(pl.col("user").unique(maintain_order=True)).to_series()
    lengths = df.group_by("first_row", maintain_order=True).len().get_column("len").to_numpy()
    # Items by first appearance in the sorted log.
    item_ids = df.select(pl.col("item").unique(maintain_order=True)).to_series()
    index = pl.DataFrame({"item": item_ids, "index": np.arange(len(item_ids), dtype=np.int32)})
    items = df.select("item").join(index, on="item", how="left", maintain_order="left")["index"]
    item_ids_np = item_ids.cast(pl.String).to_numpy().astype(object)
    if item_text is not None:
        item_text = item_text[~item_text.index.duplicated(keep="first")]  # a repeated metadata line
    text = align_item_text(item_ids_np, item_text, text_file)
    info = {
        "rows_read": rows_in,
        "rows_after_core": df.height,
        "k_core": {"user": user_core, "item": item_core, "passes": passes},
    }
    return SequenceDataset(
        name=name,
        user_ids=user_ids.cast(pl.String).to_numpy().astype(object),
        item_ids=item_ids_np,
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        items=items.to_numpy().astype(np.int32),
        item_text=text,
        timestamps=df.get_column("timestamp").to_numpy() if has_ts else None,
        meta={**(meta or {}), "log": info},
    )
