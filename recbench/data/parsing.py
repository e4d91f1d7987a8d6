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
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from recbench.errors import DataError

log = logging.getLogger(__name__)

# ASCII "unit separator": stands in for multi-character delimiters (GroupLens '::') so polars can split.
_UNIT_SEP = "\x1f"
# What a gzip'd file that does not decompress raises, from gzip.open or gzip.decompress: a wrong magic
# number or a bad CRC (BadGzipFile), a stream cut short (EOFError), corrupt deflate data (zlib.error).
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


@dataclass(frozen=True)
class Field:
    """A column of a source file: its name, polars type (Int64, Float64 or String), and optionally the
    values it may take."""

    name: str
    dtype: Any = pl.String
    required: bool = True
    choices: tuple[str, ...] | None = None


def gzip_error(path: Path, error: Exception) -> DataError:
    """``path`` (named ``.gz``) does not decompress: say whether it is not gzip at all or cut short."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(b"\x1f\x8b"):
        return DataError(
            f"{path}: not a gzip file: the name ends in .gz but the file starts with {head!r}, not the gzip "
            "signature 1f 8b (compress it, or drop .gz from its name and from the dataset config)"
        )
    if isinstance(error, EOFError):
        return DataError(
            f"{path}: truncated gzip (ends after {size:,} bytes): the compressed stream stops before its "
            "end, as after an incomplete download or copy; fetch the file again"
        )
    return DataError(f"{path}: corrupt gzip ({error}); fetch the file again")


def decode_error(
    path: Path, data: bytes, error: UnicodeDecodeError, encoding: str, first_line: int = 1
) -> DataError:
    """A byte of ``data`` (the file's content from line ``first_line`` on) is not valid ``encoding``: name
    the line, the byte and its column."""
    lineno = first_line + data.count(b"\n", 0, error.start)
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    return DataError(
        f"{path}:{lineno}: not valid {encoding}: byte 0x{data[error.start]:02x} at column {column} "
        f"(expected {encoding} text: re-encode the file, e.g. with iconv -f <its encoding> -t {encoding})"
    )


def decode(path: Path, data: bytes, encoding: str, first_line: int = 1) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise decode_error(path, data, e, encoding, first_line) from None


def read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except _GZIP_ERRORS as e:
        raise gzip_error(path, e) from None


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(line number, line without its end)`` of a text file, gzip-decompressed when named ``.gz``.

    Lines are split on ``\\n`` as bytes and decoded one at a time, so a byte that is not valid
    ``encoding`` is a :class:`DataError` naming its line (ASCII-compatible encodings only: utf-8, latin-1);
    a ``.gz`` file that is not gzip, or is cut short, is a :class:`DataError` saying which.
    """
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        try:
            for lineno, raw in enumerate(f, 1):
                yield lineno, decode(path, raw, encoding, lineno).rstrip("\r\n")
        except _GZIP_ERRORS as e:
            raise gzip_error(path, e) from None


def scan_text(path: Path, encoding: str = "utf-8") -> None:
    """Read ``path`` through :func:`iter_lines` only for its errors (a reader that failed without saying
    where calls this to find the bad line)."""
    for _ in iter_lines(path, encoding):
        pass


def _convert(value: str, dtype: Any) -> Any:
    if dtype == pl.Int64:
        return int(value)
    if dtype == pl.Float64:
        return float(value)
    return value


def _type_name(dtype: Any) -> str:
    return {pl.Int64: "an integer", pl.Float64: "a number"}.get(dtype, "a string")


def _empty(path: Path, but: str = "") -> DataError:
    return DataError(f"{path}: no data rows: the file is empty{' ' + but if but else ''}")


def _choice_error(where: str, f: Field, value: Any) -> DataError:
    return DataError(f"{where}: expected one of {list(f.choices or ())}, got {value!r}")


def check_columns(
    path: Path, present: Sequence[str], fields: Sequence[Field], known: Sequence[str] = ()
) -> None:
    """Missing required columns: error. Columns neither in ``fields`` nor ``known``: warning."""
    missing = [f.name for f in fields if f.required and f.name not in present]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {missing}; the file has {list(present)} "
            f"(expected {[f.name for f in fields if f.required]})"
        )
    expected = {f.name for f in fields} | set(known)
    unknown = [c for c in present if c not in expected]
    if unknown:
        log.warning("%s: ignoring unknown column(s) %s", path, unknown)


def _has_bad_values(df: pl.DataFrame, fields: Sequence[Field]) -> bool:
    """Whether a required column holds a null or a column with ``choices`` another value."""
    checks = [pl.col(f.name).is_null() for f in fields if f.required]
    checks += [
        pl.col(f.name).is_not_null() & ~pl.col(f.name).is_in(list(f.choices)) for f in fields if f.choices
    ]
    return bool(df.height and checks and df.select(pl.any_horizontal(checks).any()).item())


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
    raw = b""
    if path.suffix == ".gz" or not utf8 or len(separator) > 1:
        raw = read_bytes(path)
        if not utf8:
            raw = decode(path, raw, encoding).encode("utf-8")  # polars reads UTF-8 only
        if len(separator) > 1:
            raw, sep = raw.replace(separator.encode(), _UNIT_SEP.encode()), _UNIT_SEP
        source = io.BytesIO(raw)
    # else: polars reads (memory-maps) the file itself: a 20M-row csv is never copied into Python bytes
    wanted = [f for f in fields if f.name]
    if header:
        with open(path, "rb") if isinstance(source, Path) else io.BytesIO(raw) as f:
            first = decode(path, f.readline(), "utf-8").rstrip("\r\n")
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
    except pl.exceptions.NoDataError:
        raise _empty(path) from None
    except pl.exceptions.PolarsError as e:
        # polars names no line: find it (a byte that is not UTF-8 is reported by iter_lines on the way)
        raise _locate(path, fields, separator, header, encoding, quoted) or DataError(
            f"{path}: could not be parsed ({e})"
        ) from None
    if df.height == 0:
        raise _empty(path, "apart from its header" if header else "")
    df = df.select([f.name for f in wanted])
    if not header:
        df = df.with_columns(pl.col(f.name).cast(f.dtype) for f in wanted if f.dtype != pl.String)
    if _has_bad_values(df, wanted):
        raise _locate(path, fields, separator, header, encoding, quoted) or DataError(
            f"{path}: empty value in a required column {[f.name for f in wanted if f.required]}"
        )
    return df


def _locate(
    path: Path, fields: Sequence[Field], separator: str, header: bool, encoding: str, quoted: bool
) -> DataError | None:
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
            where = f"{path}:{lineno}: field {f.name!r} (column {i + 1})"
            if i >= len(parts):
                if f.required:
                    return DataError(
                        f"{where} is missing: the line has {len(parts)} column(s) separated by {separator!r}"
                    )
                continue
            value = parts[i]
            if value == "" and f.required:
                return DataError(f"{where} is empty")
            try:
                _convert(value, f.dtype)
            except ValueError:
                return DataError(f"{where}: expected {_type_name(f.dtype)}, got {value!r}")
            if f.choices and value not in f.choices:
                return _choice_error(where, f, value)
    return None


def read_json_lines(
    path: Path,
    fields: Sequence[Field],
    known: Sequence[str] = (),
    sample_lines: int = 1000,
) -> pl.DataFrame:
    """Read strict JSON lines into the columns ``fields`` (extra keys are not loaded).

    The keys of the first ``sample_lines`` objects are checked with :func:`check_columns`; a line that
    is not JSON (or not UTF-8), or an object lacking a required field, is an error naming its line.
    """
    raw = read_bytes(path)
    if not raw.strip():
        raise _empty(path)
    present: dict[str, None] = {}
    for n, line in enumerate(raw[: 1 << 24].split(b"\n")[:sample_lines]):
        if line.strip():
            try:
                present.update(dict.fromkeys(json.loads(line)))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _locate_json(path, fields) or DataError(f"{path}:{n + 1}: not valid JSON") from None
    check_columns(path, list(present), fields, known)
    wanted = [f for f in fields if f.name in present]
    try:
        df = pl.read_ndjson(io.BytesIO(raw), schema={f.name: f.dtype for f in wanted})
    except pl.exceptions.PolarsError as e:
        raise _locate_json(path, fields) or DataError(f"{path}: could not be parsed ({e})") from None
    if _has_bad_values(df, wanted):
        raise _locate_json(path, fields) or DataError(
            f"{path}: a required field {[f.name for f in wanted if f.required]} is null"
        )
    return df


def iter_json_objects(path: Path, required: Sequence[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each non-blank line of a JSON-lines file; a line that is not a JSON
    object, or lacks a ``required`` key, is a :class:`DataError` naming it."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        for key in required:
            if key not in obj:
                raise DataError(f"{path}:{lineno}: missing required field {key!r}")
        yield lineno, obj


def _locate_json(path: Path, fields: Sequence[Field]) -> DataError | None:
    try:
        for lineno, obj in iter_json_objects(path):
            if error := _check_object(path, lineno, obj, fields):
                return error
    except DataError as e:
        return e
    return None


def _check_object(path: Path, lineno: int, obj: dict[str, Any], fields: Sequence[Field]) -> DataError | None:
    """The first field of ``obj`` (line ``lineno``) that is missing, mistyped or not one of its choices."""
    for f in fields:
        value = obj.get(f.name)
        if value is None:
            if f.required:
                return DataError(f"{path}:{lineno}: missing required field {f.name!r}")
            continue
        ok = (
            isinstance(value, int) and not isinstance(value, bool)
            if f.dtype == pl.Int64
            else isinstance(value, int | float)
            if f.dtype == pl.Float64
            else isinstance(value, str)
        )
        if not ok:
            return DataError(
                f"{path}:{lineno}: field {f.name!r}: expected {_type_name(f.dtype)}, got {value!r}"
            )
        if f.choices and value not in f.choices:
            return _choice_error(f"{path}:{lineno}: field {f.name!r}", f, value)
    return None


def read_parquet(path: Path, fields: Sequence[Field], known: Sequence[str] = ()) -> pl.DataFrame:
    """Read the columns ``fields`` of a parquet file (columns as :func:`check_columns`; an Int64 field
    may be stored as integers or as strings of integers). A bad value names its row (1-based)."""
    try:
        present = list(pl.read_parquet_schema(path))
    except (pl.exceptions.PolarsError, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    check_columns(path, present, fields, known)
    wanted = [f for f in fields if f.name in present]
    df = pl.read_parquet(path, columns=[f.name for f in wanted])
    for f in wanted:
        col = df.get_column(f.name)
        converted = col.cast(f.dtype, strict=False)
        failed = converted.is_null() & col.is_not_null()
        bad = (failed | col.is_null()) if f.required else failed
        if f.choices:
            bad = bad | (converted.is_not_null() & ~converted.is_in(list(f.choices)))
        if bad.any():
            row = int(bad.arg_true()[0])
            where, value = f"{path}: row {row + 1}: field {f.name!r}", col[row]
            if value is None:
                raise DataError(f"{where} is empty")
            if failed[row]:
                raise DataError(f"{where}: expected {_type_name(f.dtype)}, got {value!r}")
            raise _choice_error(where, f, value)
        df = df.with_columns(converted)
    return df


def text_table(
    path: Path, rows: Sequence[dict[str, Any]], lines: Sequence[int], columns: Sequence[str]
) -> pd.DataFrame:
    """Item-text ``rows`` (each with ``item_id``, read from line ``lines[i]`` of ``path``) as a table
    indexed by ``item_id``. An id on two lines is an error naming both: which line is right is not ours
    to guess, and a silent pick would change what a text model sees."""
    df = pd.DataFrame(list(rows), columns=["item_id", *columns])
    dup = df["item_id"].duplicated()
    if dup.any():
        i = int(dup.to_numpy().argmax())
        item = df["item_id"].iat[i]
        first = int((df["item_id"] == item).to_numpy().argmax())
        raise DataError(
            f"{path}:{lines[i]}: duplicate item id {item!r} (first on line {lines[first]}): "
            "each item must have exactly one line"
        )
    return df.set_index("item_id")
