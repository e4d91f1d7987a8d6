"""Amazon Reviews 2014 (McAuley et al.) 5-core, in the P5 / OpenP5 preprocessed form.

This is the form used by P5, TIGER, S3-Rec and LETTER for Beauty, Sports and Toys:

* ``user_sequence.txt``: one user per line, ``reviewerID item item ...``, items oldest first
  (the origin sorted each user's reviews by ``unixReviewTime``; timestamps are not kept);
* an item-text file: JSON lines ``{"asin", "title", "categories": [[...], ...]}``.

Both may be gzip-compressed. Item indices follow order of first appearance in the sequence file.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pandas as pd

from recbench.data.dataset import SequenceDataset


def open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding)
    return open(path, encoding=encoding)


def missing_files_error(name: str, root: Path, missing: list[Path], howto: str) -> FileNotFoundError:
    listing = "\n".join(f"  - {p}" for p in missing)
    return FileNotFoundError(
        f"dataset {name!r}: expected files are missing:\n{listing}\n"
        f"Put them under {root} (set RECBENCH_DATA_DIR to the folder that holds {root.name}/, "
        f"or override data.source.root). {howto}"
    )


class P5SequenceSource:
    """Reader for ``user_sequence.txt`` (+ optional item text jsonl) under ``root``."""

    HOWTO = (
        "These are the P5/OpenP5 preprocessed files of the Amazon 2014 5-core data "
        "(data/<Category>/user_sequence.txt in the OpenP5 repository)."
    )

    def __init__(
        self,
        root: str,
        sequence_file: str,
        item_text_file: str | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.sequence_file = self.root / sequence_file
        self.item_text_file = self.root / item_text_file if item_text_file else None

    def files(self) -> dict[str, Path]:
        files = {"sequences": self.sequence_file}
        if self.item_text_file is not None:
            files["item_text"] = self.item_text_file
        missing = [p for p in files.values() if not p.is_file()]
        if missing:
            raise missing_files_error(self.root.name, self.root, missing, self.HOWTO)
        return files

    def read(self, name: str) -> SequenceDataset:
        sequences = list(read_user_sequences(self.sequence_file))
        text = read_item_text(self.item_text_file) if self.item_text_file else None
        return SequenceDataset.from_sequences(name, sequences, item_text=text)


def read_user_sequences(path: Path) -> Iterator[tuple[str, list[str]]]:
    seen: set[str] = set()
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'user item [item ...]', got {line.strip()!r}")
            if parts[0] in seen:
                raise ValueError(f"{path}:{lineno}: user {parts[0]!r} appears on more than one line")
            seen.add(parts[0])
            yield parts[0], parts[1:]


def read_item_text(path: Path) -> pd.DataFrame:
    """``asin -> title, categories`` where categories joins each path with ' > ' and paths with ' | '."""
    rows = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if "asin" not in obj:
                raise ValueError(f"{path}:{lineno}: missing required field 'asin'")
            cats = obj.get("categories") or []
            rows.append(
                {
                    "item_id": str(obj["asin"]),
                    "title": str(obj.get("title") or ""),
                    "categories": " | ".join(" > ".join(map(str, p)) for p in cats),
                }
            )
    return pd.DataFrame(rows).set_index("item_id")
