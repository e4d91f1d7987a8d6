"""Amazon Reviews 2014 (McAuley et al.) 5-core, in the P5 / OpenP5 preprocessed form.

This is the form used by P5, TIGER, S3-Rec and LETTER for Beauty, Sports and Toys:

* ``user_sequence.txt``: one user per line, ``reviewerID item item ...``, items oldest first
  (the origin sorted each user's reviews by ``unixReviewTime``; timestamps are not kept);
* an item-text file: JSON lines ``{"asin", "title", "categories": [[...], ...]}``.

Both may be gzip-compressed. Item indices follow order of first appearance in the sequence file.

:class:`AmazonRawSource` reads the official 2014 review + metadata files into the same canonical form.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import polars as pl

from recbench.data.dataset import SequenceDataset
from recbench.data.download import RemoteFile, ensure_files
from recbench.data.interactions import build_from_log
from recbench.data.parsing import Field, iter_json_objects, iter_lines, read_json_lines, text_table
from recbench.errors import DataError, MissingDataError


def missing_files_error(name: str, root: Path, missing: list[Path], howto: str) -> MissingDataError:
    listing = "\n".join(f"  - {p}" for p in missing)
    error = MissingDataError(
        f"dataset {name!r}: expected files are missing:\n{listing}\n"
        f"Put them under {root} (set RECBENCH_DATA_DIR to the folder that holds {root.name}/, "
        f"or override data.source.root). {howto}"
    )
    error.missing, error.root = list(missing), root
    return error


class P5SequenceSource:
    """Reader for ``user_sequence.txt`` (+ optional item text jsonl) under ``root``; ``downloads`` fetch
    the files (checksum-pinned) when absent."""

    HOWTO = (
        "These are the P5/OpenP5 preprocessed files of the Amazon 2014 5-core data "
        "(data/<Category>/user_sequence.txt in the OpenP5 repository). With internet, the official 2014 "
        "5-core files give the same sequences and are fetched into that folder by one command: "
        "python -m recbench.run data={name}_raw allow_unverified=true (SNAP publishes no checksums; "
        "the row records the files' sha256)."
    )

    def __init__(
        self,
        root: str,
        sequence_file: str,
        item_text_file: str | None = None,
        downloads: list[RemoteFile] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.sequence_file = self.root / sequence_file
        self.item_text_file = self.root / item_text_file if item_text_file else None
        self.downloads = list(downloads or [])

    def files(self) -> dict[str, Path]:
        files = {"sequences": self.sequence_file}
        if self.item_text_file is not None:
            files["item_text"] = self.item_text_file
        return ensure_files(
            self.root.name, self.root, files, self.downloads, self.HOWTO.format(name=self.root.name)
        )

    def read(self, name: str) -> SequenceDataset:
        sequences = list(read_user_sequences(self.sequence_file))
        text = read_item_text(self.item_text_file) if self.item_text_file else None
        return SequenceDataset.from_sequences(name, sequences, item_text=text, text_file=self.item_text_file)


def read_user_sequences(path: Path) -> Iterator[tuple[str, list[str]]]:
    """``(user, [item, ...])`` per line of ``user item [item ...]``; a file without one is an error."""
    seen: set[str] = set()
    for lineno, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"{path}:{lineno}: expected 'user item [item ...]', got {line.strip()!r}")
        if parts[0] in seen:
            raise DataError(f"{path}:{lineno}: user {parts[0]!r} appears on more than one line")
        seen.add(parts[0])
        yield parts[0], parts[1:]
    if not seen:
        raise DataError(
            f"{path}: no users/sequences: the file is empty or holds only blank lines "
            "(expected one 'user item [item ...]' line per user)"
        )


def read_item_text(path: Path) -> pd.DataFrame:
    """``asin -> title, categories`` where categories joins each path with ' > ' and paths with ' | '.

    A null or missing title becomes "" (counted when the dataset is built); an ASIN on two lines is an
    error naming both."""
    rows, lines = [], []
    for lineno, obj in iter_json_objects(path, required=["asin"]):
        rows.append(
            {
                "item_id": str(obj["asin"]),
                "title": str(obj.get("title") or ""),
                "categories": join_categories(obj.get("categories") or []),
            }
        )
        lines.append(lineno)
    return text_table(path, rows, lines, ["title", "categories"])


# ---- the official 2014 files ------------------------------------------------------------------------

# Fields of the 2014 (and 2018) review files that are known and not needed: not warned about.
REVIEW_FIELDS_KNOWN = (
    "reviewerName",
    "helpful",
    "reviewText",
    "overall",
    "summary",
    "reviewTime",
    "vote",
    "verified",
    "style",
    "image",
)
_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


class AmazonRawSource:
    """The official Amazon 2014 files (McAuley et al., SIGIR 2015; He & McAuley, WWW 2016):
    ``reviews_<Category>_5.json.gz`` (strict JSON lines) and ``meta_<Category>.json.gz`` (one Python
    literal per line — the 2014 "loose JSON" — parsed with :func:`ast.literal_eval`, never ``eval``).

    Sequences follow S3-Rec's ``data_process.py``, the preprocessing behind the P5/TIGER files: reviews
    sorted by ``unixReviewTime`` (ties in file order), users and items 5-core filtered to a fixed point,
    ids by first appearance (see :mod:`recbench.data.interactions`). Timestamps are kept.

    Args:
        text_fields: item-text columns taken from the metadata. ``title`` and ``categories`` (paths
            joined as in :func:`read_item_text`) match the P5-form item text; ``brand``, ``price`` and
            ``description`` are also available.
        downloads: official files fetched into ``root`` when absent (see :mod:`recbench.data.download`).
    """

    HOWTO = (
        "These are the official Amazon 2014 5-core review and metadata files "
        "(https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html)."
    )
    TEXT_FIELDS = ("title", "categories", "brand", "price", "description")

    def __init__(
        self,
        root: str,
        reviews_file: str,
        meta_file: str | None = None,
        user_core: int = 5,
        item_core: int = 5,
        text_fields: Sequence[str] = ("title", "categories"),
        downloads: list[RemoteFile] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.reviews_file = self.root / reviews_file
        self.meta_file = self.root / meta_file if meta_file else None
        self.user_core, self.item_core = user_core, item_core
        unknown = sorted(set(text_fields) - set(self.TEXT_FIELDS))
        if unknown:
            raise ValueError(f"text_fields {unknown} unknown; the 2014 metadata offers {self.TEXT_FIELDS}")
        self.text_fields = list(text_fields)
        self.downloads = list(downloads or [])

    def files(self) -> dict[str, Path]:
        files = {"reviews": self.reviews_file}
        if self.meta_file is not None:
            files["meta"] = self.meta_file
        return ensure_files(self.root.name, self.root, files, self.downloads, self.HOWTO)

    def read(self, name: str) -> SequenceDataset:
        log_df = read_json_lines(
            self.reviews_file,
            [Field("reviewerID"), Field("asin"), Field("unixReviewTime", pl.Int64)],
            known=REVIEW_FIELDS_KNOWN,
        ).rename({"reviewerID": "user", "asin": "item", "unixReviewTime": "timestamp"})
        wanted = set(log_df.get_column("item").unique().to_list())
        text = read_meta_2014(self.meta_file, wanted, self.text_fields) if self.meta_file else None
        return build_from_log(name, log_df, text, self.user_core, self.item_core, text_file=self.meta_file)


def read_meta_2014(path: Path, asins: set[str], fields: Sequence[str]) -> pd.DataFrame:
    """``asin -> fields`` for the wanted ASINs from a 2014 metadata file (JSON or Python-literal lines).

    Only lines whose ASIN is wanted are fully parsed: the category files hold far more products than
    their 5-core review files.
    """
    rows = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        m = _ASIN.search(line)
        if m is None:
            raise DataError(f"{path}:{lineno}: missing required field 'asin'")
        if m.group(1) not in asins:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            try:
                obj = ast.literal_eval(line)
            except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
                raise DataError(f"{path}:{lineno}: neither JSON nor a Python literal ({e})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected an object, got {type(obj).__name__}")
        row = {"item_id": str(obj["asin"])}
        for f in fields:
            value = obj.get(f)
            if f == "categories":
                if value is not None and not isinstance(value, list):
                    raise DataError(f"{path}:{lineno}: field 'categories': expected a list of paths")
                row[f] = join_categories(value or [])
            else:
                row[f] = "" if value is None else str(value)
        rows.append(row)
    return pd.DataFrame(rows, columns=["item_id", *fields]).set_index("item_id")


def join_categories(paths: list) -> str:
    """``[["Beauty", "Hair Care"], ["Beauty", "Bath"]]`` -> ``"Beauty > Hair Care | Beauty > Bath"``
    (a flat list is one path, as in the 2023 metadata)."""
    if paths and not any(isinstance(p, list) for p in paths):
        paths = [paths]
    return " | ".join(" > ".join(map(str, p)) for p in paths)
