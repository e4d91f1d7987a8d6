"""The one way recbench writes a file: whole or not at all.

Everything recbench writes (result rows, predictions, checkpoints, caches, leaderboard pages) goes
through :func:`atomic_file`: a temp file in the destination folder, flushed and fsynced, then renamed over
the final name. A full disk, a crash or an exception mid-write leaves the final name as it was (absent, or
the previous complete file) and removes the temp file. The temp file lives in the destination folder
because a rename is atomic only within one filesystem: writing elsewhere and copying across (what fsspec's
local transaction does) can leave a truncated file under the final name when the disk fills.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

TEMP_SUFFIX = ".tmp"  # never .ckpt/.json/.parquet: globs for finished files must not match a temp file


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file next to ``path``. Created with mode 0o666 so the kernel applies the umask,
    as a plain ``open()`` does (``tempfile.mkstemp`` would make it 0o600, and the rename keeps that)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # another writer's temp file: draw another name
            continue


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); platforms that cannot open a folder skip it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the file's own data is already synced
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], mode: Literal["wb", "w"] = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temp file in ``path``'s folder for writing; on a clean exit flush, fsync and rename it to
    ``path``; on any error (or interrupt) remove it and re-raise, leaving ``path`` untouched.

    The file gets the mode a plain ``open(path, "w")`` would give it: an existing file's mode, else
    0o666 less the umask. Missing parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            with contextlib.suppress(FileNotFoundError):  # overwriting keeps the file's mode, as open() does
                os.chmod(f.fileno(), stat.S_IMODE(os.stat(path).st_mode))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) whole or not at all."""
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_parquet(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write a parquet file whole or not at all."""
    with atomic_file(path) as f:
        pq.write_table(table, f)
