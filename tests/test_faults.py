"""Faults: nothing half-written, nothing lost.

A full disk while writing a row or predictions leaves nothing under the final name (and no temp file);
written files get the user's umask.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pytest

from recbench.utils.files import atomic_file, atomic_write_parquet, atomic_write_text

from .test_run import fast_run

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# -- whole or not at all -----------------------------------------------------------------------------------


def test_a_write_that_fails_leaves_nothing_and_keeps_the_previous_file(tmp_path):
    path = tmp_path / "result.json"
    with pytest.raises(OSError, match="No space left"), atomic_file(path, "w") as f:
        f.write("half a row")
        raise ENOSPC
    assert listing(tmp_path) == []  # nothing under the final name, no temp file
    atomic_write_text(path, "the whole row\n")
    with pytest.raises(KeyboardInterrupt), atomic_file(path, "w") as f:
        f.write("an interrupted rewrite")
        raise KeyboardInterrupt
    assert path.read_text() == "the whole row\n" and listing(tmp_path) == ["result.json"]


def test_rows_and_predictions_on_a_full_disk_leave_nothing(tmp_path, monkeypatch):
    """The parquet and JSON writers share atomic_file: a failure inside either leaves no file."""
    import pyarrow.parquet as pq

    def full(table, where, **kwargs):
        where.write(b"PAR1")
        raise ENOSPC

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_parquet(pa.table({"user": [1, 2]}), tmp_path / "predictions.parquet")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(ENOSPC))  # the disk fills on fsync
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(tmp_path / "result.json", "{}")
    assert listing(tmp_path) == []


# -- the user's umask --------------------------------------------------------------------------------------


@pytest.fixture
def umask():
    def set_umask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_umask
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_get_the_umask_mode_and_rewrites_keep_theirs(tmp_path, umask):
    umask(0o027)
    atomic_write_text(tmp_path / "a.json", "{}")
    assert mode(tmp_path / "a.json") == 0o640  # as open() gives: 0o666 & ~umask (mkstemp would give 0o600)
    os.chmod(tmp_path / "a.json", 0o664)
    atomic_write_text(tmp_path / "a.json", "{} ")
    assert mode(tmp_path / "a.json") == 0o664  # overwriting keeps the file's mode, as open() does


def test_a_run_writes_its_files_with_the_umask_mode(tmp_path, umask):
    umask(0o022)
    fast_run(tmp_path, "trainer.max_epochs=1")
    for name in (
        "result.json",
        "predictions.parquet",
        "checkpoints/last.ckpt",
        "checkpoints/best-epoch000.ckpt",
    ):
        assert mode(tmp_path / name) == 0o644, name
