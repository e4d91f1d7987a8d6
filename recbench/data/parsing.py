"""Columnar readers for delimited and JSON-lines source files, with errors that name file, line and field.

The fast path is polars (C++/Rust parsing, no Python loop over rows). Polars' own errors give a byte
offset at best, so when it fails — or when a required field comes back empty — the file is scanned
again line by line in Python only to *find* the first bad line and report it as
``<file>:<line>: field '<name>' …``. Correct files never pay for the scan.

Column rules (the same for every source): a missing required column is an error naming the file and
the columns it has; an unknown extra column is ignored with a warning.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

log = logging.getLogger(__name__)

# ASCII "unit separator": stands in for multi-character delimiters (GroupLens '::') so polars can split.
_UNIT_SEP = "\x1f"


@dataclass(frozen=True)
class Field:
    """A column of a source file: its name and polars type (Int64, Float64 or String)."""

    name: str
    dtype: Any = pl.String
    required: bool = True


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding=encoding, newline="") as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, line.rstrip("\r\n")


def _convert(value: str, dtype: Any) -> Any:
    if dtype == pl.Int64:
        return int(value)
    if dtype == pl.Float64:
        return float(value)
    return value


def _type_name(dtype: Any) -> str:
    return {pl.Int64: "an integer", pl.Float64: "a number"}.get(dtype, "a string")


def check_columns(
    path: Path, present: Sequence[str], fields: Sequence[Field], known: Sequence[str] = ()
) -> None:
    """Missing required columns: error. Columns neither in ``fields`` nor ``known``: warning."""
    missing = [f.name for f in fields if f.required and f.name not in present]
    if missing:
        raise ValueError(
            f"{path}: missing required column(s) {missing}; the file has {list(present)} "
            f"(expected {[f.name for f in fields if f.required]})"
        )
    expected = {f.name for f in fields} | set(known)
    unknown = [c for c in present if c not in expected]
    if unknown:
        log.warning("%s: ignoring unknown column(s) %s", path, unknown)


def read_delimited(
    path: Path,
    fields: Sequence[Field],
    separator: str,
    header: bool,
    encoding: str = "utf-8",
    quoted: bool = False,
    known: Sequence[str] = (),
) -> pl.DataFrame:
    """Read a delimited text file (optionally gzip'd) into the columns ``fields``.

    Without a header, ``fields`` name the columns by position (a field named ``""`` is skipped) and a
    line with fewer columns is an error; with a header, columns are matched by name, see
    :func:`check_columns`.
    """
    utf8 = encoding.lower().replace("-", "") in ("utf8", "ascii")
    source: Path | io.BytesIO = path
    sep = separator
    if path.suffix == ".gz" or not utf8 or len(separator) > 1:
        raw = read_bytes(path)
        if not utf8:
            raw = raw.decode(encoding).encode("utf-8")  # polars reads UTF-8 only
        if len(separator) > 1:
            raw, sep = raw.replace(separator.encode(), _UNIT_SEP.encode()), _UNIT_SEP
        source = io.BytesIO(raw)
    # else: polars reads (memory-maps) the file itself: a 20M-row csv is never copied into Python bytes
    wanted = [f for f in fields if f.name]
    if header:
        with open(path, "rb") if isinstance(source, Path) else io.BytesIO(raw) as f:
            first = f.readline().decode("utf-8").rstrip("\r\n")
        present = next(csv.reader([first], delimiter=sep)) if quoted else first.split(sep)
        check_columns(path, present, wanted, known)
        wanted = [f for f in wanted if f.name in present]
        columns: list[str] | None = [f.name for f in wanted]
        new_columns = None
    else:
        columns = None
        new_columns = [f.name or f"_skip{i}" for i, f in enumerate(fields)]
    try:
        df = pl.read_csv(
            source,
            separator=sep,
            has_header=header,
            columns=columns,
            new_columns=new_columns,
            schema_overrides={f.name: f.dtype for f in wanted},
            quote_char='"' if quoted else None,
            infer_schema=header,
            truncate_ragged_lines=True,
        )
    except pl.exceptions.PolarsError as e:
        raise _locate(path, fields, separator, header, encoding, quoted) or ValueError(
            f"{path}: could not be parsed ({e})"
        ) from None
    df = df.select([f.name for f in wanted])
    if not header:
        df = df.with_columns(pl.col(f.name).cast(f.dtype) for f in wanted if f.dtype != pl.String)
    required = [f.name for f in wanted if f.required]
    if df.select(pl.any_horizontal(pl.col(required).is_null()).any()).item():
        raise _locate(path, fields, separator, header, encoding, quoted) or ValueError(
            f"{path}: empty value in a required column {required}"
        )
    return df


def _locate(
    path: Path, fields: Sequence[Field], separator: str, header: bool, encoding: str, quoted: bool
) -> ValueError | None:
    """The first line that does not parse, as an error naming file, line and field (slow: error path only)."""
    positions: list[tuple[int, Field]] = []
    for lineno, line in iter_lines(path, encoding):
        if not line.strip():
            continue
        parts = next(csv.reader([line], delimiter=separator)) if quoted else line.split(separator)
        if header and lineno == 1:
            positions = [(parts.index(f.name), f) for f in fields if f.name and f.name in parts]
            continue
        if not header and not positions:
            positions = [(i, f) for i, f in enumerate(fields) if f.name]
        for i, f in positions:
            if i >= len(parts):
                if f.required:
                    return ValueError(
                        f"{path}:{lineno}: field {f.name!r} (column {i + 1}) is missing: the line has "
                        f"{len(parts)} column(s) separated by {separator!r}"
                    )
                continue
            value = parts[i]
            if value == "" and f.required:
                return ValueError(f"{path}:{lineno}: field {f.name!r} (column {i + 1}) is empty")
            try:
                _convert(value, f.dtype)
            except ValueError:
                return ValueError(
                    f"{path}:{lineno}: field {f.name!r} (column {i + 1}): expected {_type_name(f.dtype)}, "
                    f"got {value!r}"
                )
    return None


def read_json_lines(
    path: Path,
    fields: Sequence[Field],
    known: Sequence[str] = (),
    sample_lines: int = 1000,
) -> pl.DataFrame:
    """Read strict JSON lines into the columns ``fields`` (extra keys are not loaded).

    The keys of the first ``sample_lines`` objects are checked with :func:`check_columns`; a line that
    is not JSON, or an object lacking a required field, is an error naming its line.
    """
    raw = read_bytes(path)
    present: dict[str, None] = {}
    for n, line in enumerate(raw[: 1 << 24].split(b"\n")[:sample_lines]):
        if line.strip():
            try:
                present.update(dict.fromkeys(json.loads(line)))
            except json.JSONDecodeError:
                raise _locate_json(path, fields) or ValueError(f"{path}:{n + 1}: not valid JSON") from None
    check_columns(path, list(present), fields, known)
    wanted = [f for f in fields if f.name in present]
    try:
        df = pl.read_ndjson(io.BytesIO(raw), schema={f.name: f.dtype for f in wanted})
    except pl.exceptions.PolarsError as e:
        raise _locate_json(path, fields) or ValueError(f"{path}: could not be parsed ({e})") from None
    required = [f.name for f in wanted if f.required]
    if df.height and df.select(pl.any_horizontal(pl.col(required).is_null()).any()).item():
        raise _locate_json(path, fields) or ValueError(f"{path}: a required field {required} is null")
    return df


def _locate_json(path: Path, fields: Sequence[Field]) -> ValueError | None:
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            return ValueError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})")
        if not isinstance(obj, dict):
            return ValueError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        for f in fields:
            value = obj.get(f.name)
            if value is None:
                if f.required:
                    return ValueError(f"{path}:{lineno}: missing required field {f.name!r}")
                continue
            ok = (
                isinstance(value, int) and not isinstance(value, bool)
                if f.dtype == pl.Int64
                else isinstance(value, int | float)
                if f.dtype == pl.Float64
                else isinstance(value, str)
            )
            if not ok:
                return ValueError(
                    f"{path}:{lineno}: field {f.name!r}: expected {_type_name(f.dtype)}, got {value!r}"
                )
    return None
