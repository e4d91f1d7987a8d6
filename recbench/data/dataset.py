"""The canonical dataset form every source is converted to, and its on-disk cache.

A dataset is a set of users, each with a chronologically ordered sequence of item indices, plus an item
table (raw id and text fields). Sequences are stored CSR-style (``offsets`` + one flat ``items`` array) so
that a 20M-interaction dataset is two numpy arrays, not 20M Python objects.

On disk (one folder per cache key, see :func:`load_dataset`)::

    interactions.parquet  user:int32  item:int32  position:int32  [timestamp:int64]
    items.parquet         item:int32  item_id:str  <text fields>
    users.parquet         user:int32  user_id:str
    meta.json             name, source description + sha256 of every source file, preprocessing
                          version, statistics, fingerprint

The *fingerprint* is the sha256 of the canonical content (ids, sequences, item ids), so two routes to the
same data (official raw files vs. a preprocessed copy) can be proven identical, and every result row says
exactly which data it was computed on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from recbench.errors import ConfigError, DataError, MissingDataError, RecbenchError

log = logging.getLogger(__name__)

# Bump on any change to how sources become canonical data (parsing, ordering, id assignment). The version
# is part of the cache key and of every result row.
PREPROCESSING_VERSION = "1"


@dataclass
class SequenceDataset:
    """Users' chronological item sequences (CSR) and the item table.

    Item indices are 0-based and dense (``0 .. num_items - 1``); models that need a padding id shift them.
    """

    name: str
    user_ids: np.ndarray  # (U,) raw user ids (str)
    item_ids: np.ndarray  # (I,) raw item ids (str)
    offsets: np.ndarray  # (U + 1,) int64, sequence of user u is items[offsets[u]:offsets[u + 1]]
    items: np.ndarray  # (N,) int32 item indices, chronological within each user
    item_text: pd.DataFrame = field(default_factory=pd.DataFrame)  # index = item index, str columns
    timestamps: np.ndarray | None = None  # (N,) int64 unix seconds, when the source has them
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int32)
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.items) or np.any(np.diff(self.offsets) < 0):
            raise DataError(f"{self.name}: offsets must start at 0, end at len(items) and never decrease")
        if len(self.offsets) != len(self.user_ids) + 1:
            raise DataError(f"{self.name}: {len(self.user_ids)} users but {len(self.offsets) - 1} sequences")
        if len(self.items) and (self.items.min() < 0 or self.items.max() >= len(self.item_ids)):
            raise DataError(f"{self.name}: item index outside 0..{len(self.item_ids) - 1}")
        # Lets text-needing code name the dataset when it has no text (render_texts' error).
        self.item_text.attrs["dataset"] = self.name

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_interactions(self) -> int:
        return len(self.items)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def stats(self) -> dict[str, Any]:
        lengths = self.lengths()
        n_u, n_i, n = self.num_users, self.num_items, self.num_interactions
        text_cols = [c for c in self.item_text.columns]
        return {
            "users": n_u,
            "items": n_i,
            "interactions": n,
            "sparsity": 1.0 - n / (n_u * n_i) if n_u and n_i else 1.0,
            "mean_seq_len": float(lengths.mean()) if n_u else 0.0,
            "median_seq_len": float(np.median(lengths)) if n_u else 0.0,
            "min_seq_len": int(lengths.min()) if n_u else 0,
            "max_seq_len": int(lengths.max()) if n_u else 0,
            "item_text_fields": text_cols,
            "item_text_coverage": text_coverage(self.item_text) or 0.0,
            "has_timestamps": self.timestamps is not None,
        }

    def fingerprint(self) -> str:
        """sha256 of the canonical content: what a model sees, independent of how it was read."""
        h = hashlib.sha256()
        h.update(b"recbench-sequences-v1\0")
        for arr in (self.offsets, self.items):
            h.update(np.ascontiguousarray(arr).tobytes())
        for ids in (self.user_ids, self.item_ids):
            h.update("\n".join(map(str, ids)).encode())
            h.update(b"\0")
        if self.timestamps is not None:
            h.update(np.ascontiguousarray(self.timestamps, dtype=np.int64).tobytes())
        return h.hexdigest()

    @classmethod
    def from_sequences(
        cls,
        name: str,
        sequences: list[tuple[str, list[str]]],
        item_text: pd.DataFrame | None = None,
        meta: dict[str, Any] | None = None,
        text_file: Path | None = None,
    ) -> SequenceDataset:
        """Build from ``(user_id, [item_id, ...])`` in chronological order.

        Item indices are assigned in order of first appearance (users in the given order), the rule S3-Rec
        and P5 use, so the same file always gives the same ids. ``item_text`` (read from ``text_file``) is
        indexed by raw item id; items without text get empty strings, see :func:`align_item_text`.
        """
        index: dict[str, int] = {}
        flat: list[int] = []
        offsets = [0]
        for _, seq in sequences:
            for it in seq:
                flat.append(index.setdefault(it, len(index)))
            offsets.append(len(flat))
        item_ids = np.array(list(index), dtype=object)
        return cls(
            name=name,
            user_ids=np.array([u for u, _ in sequences], dtype=object),
            item_ids=item_ids,
            offsets=np.array(offsets, dtype=np.int64),
            items=np.array(flat, dtype=np.int32),
            item_text=align_item_text(item_ids, item_text, text_file),
            meta=dict(meta or {}),
        )


def text_coverage(item_text: pd.DataFrame) -> float | None:
    """Fraction of items (rows) with a non-empty value in some text column; None without text columns
    (a dataset read without an item-text file)."""
    if not len(item_text.columns):
        return None
    if not len(item_text):
        return 0.0
    has_text = item_text.astype(str).apply(lambda c: c.str.len() > 0).any(axis=1)
    return float(has_text.mean())


def align_item_text(
    item_ids: np.ndarray, item_text: pd.DataFrame | None, text_file: Path | None
) -> pd.DataFrame:
    """``item_text`` (indexed by raw id) in item-index order; items without text get empty strings.

    That recovery is logged, not silent: one warning names ``text_file``, how many items lack a title
    (absent from the file, or with a missing, null or empty one) and up to 5 example ids of each kind.
    """
    text = pd.DataFrame(index=pd.RangeIndex(len(item_ids)))
    if item_text is None or not len(item_text.columns):
        return text
    absent = ~pd.Index(item_ids).isin(item_text.index)
    text = item_text.reindex(item_ids).fillna("").reset_index(drop=True)
    field = "title" if "title" in text.columns else "text"
    main = text["title"] if "title" in text.columns else text.astype(str).agg("".join, axis=1)
    empty = ~absent & (main.astype(str).str.len() == 0).to_numpy()
    if absent.any() or empty.any():

        def examples(mask: np.ndarray) -> str:
            return ", ".join(repr(str(i)) for i in item_ids[mask][:5])

        parts = (
            [f"{int(absent.sum())} are absent from the file (e.g. {examples(absent)})"]
            if absent.any()
            else []
        )
        if empty.any():
            parts.append(f"{int(empty.sum())} have a missing, null or empty {field} (e.g. {examples(empty)})")
        log.warning(
            "%s: %d of %d items have no %s (they get an empty one): %s",
            text_file or "item text",
            int(absent.sum() + empty.sum()),
            len(item_ids),
            field,
            ", ".join(parts),
        )
    return text


class Source(Protocol):
    """Where a dataset comes from. One small class per format; configs pick one with ``_target_``."""

    def files(self) -> dict[str, Path]:
        """The source files this dataset is read from (checked to exist, then hashed for the cache key)."""
        ...

    def read(self, name: str) -> SequenceDataset:
        """Parse the source files into the canonical form."""
        ...


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_dataset(ds: SequenceDataset, folder: Path) -> None:
    """Write the canonical form to ``folder`` atomically (temp folder, then rename)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        lengths = ds.lengths()
        users = np.repeat(np.arange(ds.num_users, dtype=np.int32), lengths)
        position = (np.arange(ds.num_interactions) - np.repeat(ds.offsets[:-1], lengths)).astype(np.int32)
        cols = {"user": users, "item": ds.items, "position": position}
        if ds.timestamps is not None:
            cols["timestamp"] = np.asarray(ds.timestamps, dtype=np.int64)
        pq.write_table(pa.table(cols), tmp / "interactions.parquet")
        items = ds.item_text.copy()
        items.insert(0, "item_id", ds.item_ids.astype(str))
        items.insert(0, "item", np.arange(ds.num_items, dtype=np.int32))
        pq.write_table(pa.Table.from_pandas(items, preserve_index=False), tmp / "items.parquet")
        users_t = pa.table(
            {"user": np.arange(ds.num_users, dtype=np.int32), "user_id": ds.user_ids.astype(str)}
        )
        pq.write_table(users_t, tmp / "users.parquet")
        meta = {**ds.meta, "name": ds.name, "stats": ds.stats(), "fingerprint": ds.fingerprint()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_saved_dataset(folder: Path) -> SequenceDataset:
    meta = json.loads((folder / "meta.json").read_text())
    inter = pq.read_table(folder / "interactions.parquet")
    users = inter.column("user").to_numpy()
    items_t = pq.read_table(folder / "items.parquet").to_pandas()
    users_t = pq.read_table(folder / "users.parquet").to_pandas()
    counts = np.bincount(users, minlength=len(users_t))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    ts = inter.column("timestamp").to_numpy() if "timestamp" in inter.column_names else None
    text = items_t.drop(columns=["item", "item_id"]).reset_index(drop=True)
    return SequenceDataset(
        name=meta["name"],
        user_ids=users_t["user_id"].to_numpy(dtype=object),
        item_ids=items_t["item_id"].to_numpy(dtype=object),
        offsets=offsets,
        items=inter.column("item").to_numpy(),
        item_text=text,
        timestamps=ts,
        meta={k: v for k, v in meta.items() if k not in ("name", "stats", "fingerprint")},
    )


def check_sha256(
    files: Mapping[str, Path], digests: Mapping[str, str], pinned: Mapping[str, str | None] | None
) -> None:
    """Source files against the digests a dataset config pins (``data.sha256``, keyed like
    ``source.files()``). ``pinned`` None, or a key's digest null, skips that check."""
    for key, expected in (pinned or {}).items():
        if key not in digests:
            raise ConfigError(f"data.sha256 names {key!r}, but the source's files are {sorted(digests)}")
        if expected and digests[key] != expected:
            raise DataError(
                f"{files[key]}: sha256 is {digests[key]}, the dataset config pins {expected}: "
                "a different or corrupted copy. To use it anyway, override data.sha256=null (skips the "
                f"check of every file) or pin this copy with data.sha256.{key}={digests[key]}"
            )


def load_dataset(
    name: str,
    source: Source,
    cache_dir: str | os.PathLike[str] | None = None,
    expected_stats: dict[str, int] | None = None,
    sha256: Mapping[str, str | None] | None = None,
    fallback: Source | None = None,
    fingerprint: str | None = None,
) -> SequenceDataset:
    """Read a dataset through its cache, then check it against its published statistics.

    The cache key is the sha256 of every source file plus :data:`PREPROCESSING_VERSION`: editing a
    source file or the preprocessing code can never serve a stale copy. ``sha256`` pins source files
    (see :func:`check_sha256`); a mismatch is an error naming the file. A source that fails to parse
    leaves nothing in the cache.

    ``fallback`` is read when ``source``'s files are absent: the same data in a form that can be
    downloaded (checksum-pinned in its own config), e.g. the published copy of a preprocessed file.
    ``fingerprint`` pins the canonical content (:meth:`SequenceDataset.fingerprint`), so a fallback, or any
    other copy, is proven to hold exactly the sequences the pinned rows were computed on.
    """
    files, source, sha256, absent = _files_or_fallback(name, source, fallback, sha256)
    digests = {key: sha256_file(path) for key, path in sorted(files.items())}
    check_sha256(files, digests, sha256)
    key = hashlib.sha256(json.dumps([PREPROCESSING_VERSION, digests], sort_keys=True).encode()).hexdigest()[
        :16
    ]
    folder = Path(cache_dir).expanduser() / name / key if cache_dir else None
    if folder is None:
        ds = _preprocess(name, source, files, digests)
    else:
        # Parallel jobs of a sweep may ask for the same dataset at once: one builds, the others wait.
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            remove_stale_temp_folders(folder)
            if (folder / "meta.json").exists():
                log.info("Loading %s from cache %s", name, folder)
                ds = read_saved_dataset(folder)
            else:
                ds = _preprocess(name, source, files, digests)
                save_dataset(ds, folder)
    ds.meta["cache_key"] = key
    ds.meta["source"] = describe_source(source, files)
    if absent and not len(ds.item_text.columns):
        ds.item_text.attrs["no_text"] = (
            f"it was read from the downloaded copy ({ds.meta['source']}), which has none, because "
            f"{', '.join(map(str, absent))} were absent: put those files in place for item text"
        )
    if expected_stats:
        check_stats(ds, expected_stats)
    if fingerprint and (actual := ds.fingerprint()) != fingerprint:
        raise DataError(
            f"dataset {name!r} ({ds.meta['source']}): its canonical content has fingerprint "
            f"{actual}, the dataset config pins {fingerprint}: not the sequences the published "
            "rows were computed on. Override data.fingerprint=null if you mean to use other data."
        )
    return ds


def _files_or_fallback(
    name: str, source: Source, fallback: Source | None, sha256: Mapping[str, str | None] | None
) -> tuple[dict[str, Path], Source, Mapping[str, str | None] | None, list[Path]]:
    """``source``'s files, or else ``fallback``'s (downloaded if need be; ``sha256`` pins ``source``'s
    files only, the fallback's downloads carry their own), with the absent files of ``source``."""
    try:
        return source.files(), source, sha256, []
    except MissingDataError as missing:
        if fallback is None:
            raise
        log.info(  # info: after the first download this is every run's normal path
            "%s: no local copy under %s; reading the same data from %s instead",
            name,
            getattr(source, "root", "its root"),
            describe_source(fallback, None),
        )
        try:
            return fallback.files(), fallback, None, list(missing.missing or [])
        except RecbenchError as e:
            from recbench.data.amazon import missing_files_error  # amazon.py imports this module

            howto = (
                f"The same data could not be downloaded instead: {e}\nWith internet, one command downloads "
                f"it (checksum-verified): python -m recbench.data fetch data={name}"
            )
            if missing.missing is None or missing.root is None:  # a source that does not list them
                raise MissingDataError(f"{missing}\n{howto}") from e
            raise missing_files_error(name, missing.root, missing.missing, howto) from e


def describe_source(source: Source, files: Mapping[str, Path] | None) -> str:
    """``Class: file, file`` (paths relative to the source's root) or, before its files are known, the
    URLs it downloads from: which form of a dataset a row was computed from."""
    root = getattr(source, "root", None)
    if files:
        shown = [
            str(p.relative_to(root)) if root and p.is_relative_to(root) else str(p) for p in files.values()
        ]
    else:
        shown = [r.url for r in getattr(source, "downloads", None) or []]
    return f"{type(source).__name__}: {', '.join(shown)}" if shown else type(source).__name__


def remove_stale_temp_folders(folder: Path) -> None:
    """Remove ``.<key>.*``, the temp folders of :func:`save_dataset` for ``folder``, left by writers that
    died mid-save (``kill -9``, OOM, power loss: its ``except`` never ran).

    Call only while holding ``folder``'s FileLock. Then every such folder is stale: the cache is written
    only by :func:`load_dataset`, which calls :func:`save_dataset` inside that same lock, so a live writer
    of this key would be holding the lock we hold. The kernel releases a dead process's flock, even after
    ``kill -9``, which is why the lock is ours to take at all. (This does not hold where flock is not
    honoured across machines, e.g. some NFS mounts — there the FileLock itself does not protect the cache.)
    """
    for tmp in folder.parent.glob(f".{folder.name}.*"):
        if tmp.is_dir():
            log.warning("Removing %s: the temp folder of a cache build that never finished", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def _preprocess(
    name: str, source: Source, files: dict[str, Path], digests: dict[str, str]
) -> SequenceDataset:
    log.info("Preprocessing %s from %s", name, ", ".join(str(p) for p in files.values()) or "its generator")
    ds = source.read(name)
    if ds.num_users == 0:  # readers say which file; this catches a source that does not
        where = ", ".join(str(p) for p in files.values()) or f"dataset {name!r}"
        raise DataError(f"{where}: no users/sequences: the source holds no interactions")
    ds.meta.update(
        source=type(source).__name__, source_sha256=digests, preprocessing_version=PREPROCESSING_VERSION
    )
    return ds


def check_stats(ds: SequenceDataset, expected: dict[str, int]) -> None:
    """Fail loudly when a dataset does not match its published statistics: its numbers would not be
    comparable with anyone else's."""
    actual = {"users": ds.num_users, "items": ds.num_items, "interactions": ds.num_interactions}
    wrong = {k: (v, actual[k]) for k, v in expected.items() if actual.get(k) != v}
    if wrong:
        detail = ", ".join(f"{k}: expected {e:,}, got {a:,}" for k, (e, a) in wrong.items())
        raise DataError(
            f"dataset {ds.name!r} does not match its published statistics ({detail}); "
            f"source files: {ds.meta.get('source_sha256', '?')}. Check the files against the sha256 "
            "in the dataset config, or override data.expected_stats if you mean to use other data."
        )
