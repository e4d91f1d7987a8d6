"""Fetch official source files: resumable, checksum-verified, atomic.

A download goes to ``<file>.part`` next to its destination. An interrupted transfer (dropped connection)
is resumed with an HTTP ``Range`` request, within the same call (a few retries) and across calls (a
``.part`` left by a killed process is picked up). Only a complete file whose checksum matches the pin is
renamed into place; a checksum mismatch, a server that keeps sending too few bytes, or any HTTP error
deletes the ``.part`` and raises an error that says what was expected — nothing half-written is ever
left where a reader would take it for the real file.

Every file is verified: its config pins a checksum (``sha256:<hex>``, or ``md5:<hex>`` where the publisher
gives only that: GroupLens), or the download is refused before a byte is fetched unless the config says
``allow_unverified: true`` (``python -m recbench.run allow_unverified=true …``, recorded in the row's config).

Zip archives (MovieLens) are checked whole before anything is written: every member must stay inside the
target folder and be a plain file or folder (no links, no absolute paths). Members are then extracted into
a temporary folder beside the target and renamed into place.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from recbench.errors import RecbenchError, RefusedError
from recbench.utils.progress import Progress

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file published at ``url``, saved as ``root / filename``.

    Args:
        checksum: ``"sha256:<hex>"`` or ``"md5:<hex>"`` (what the publisher gives: GroupLens publishes md5
            for its zips). ``None`` where no trustworthy digest is known: the download is then refused
            unless ``allow_unverified``.
        extract: unzip the archive into ``root`` after verifying it.
        allow_unverified: accept a file without a pinned checksum (whatever the server sends); the sha256
            it had is logged, to pin.
    """

    url: str
    filename: str
    checksum: str | None = None
    extract: bool = False
    allow_unverified: bool = False


class DownloadError(RecbenchError, RuntimeError):
    pass


def _hasher(checksum: str | None) -> tuple[str, str | None]:
    if checksum is None:
        return "sha256", None
    algo, _, digest = checksum.partition(":")
    if algo not in ("sha256", "md5") or not digest:
        raise ValueError(f"checksum {checksum!r}: expected 'sha256:<hex>' or 'md5:<hex>'")
    return algo, digest.lower()


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def fetch(remote: RemoteFile, root: Path, retries: int = 3, timeout: float = 60.0) -> Path:
    """Download ``remote`` to ``root / remote.filename`` unless a verified copy is already there."""
    dest = root / remote.filename
    if not dest.resolve().is_relative_to(root.resolve()):
        raise RefusedError(f"{remote.url}: file name {remote.filename!r} would be written outside {root}")
    algo, expected = _hasher(remote.checksum)
    if expected is None and not remote.allow_unverified:
        raise RefusedError(
            f"{remote.url}: no checksum is pinned for {remote.filename}, so whatever the server sends would "
            "be trusted. Pin it in the dataset config (checksum: sha256:<hex>), or accept the file "
            "unverified with allow_unverified=true (recorded in the result row)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if dest.is_file():
            if expected is None or file_digest(dest, algo) == expected:
                return dest
            raise DownloadError(
                f"{dest}: exists but its {algo} is {file_digest(dest, algo)}, expected {expected} "
                f"({remote.url}); delete it to download again"
            )
        part = dest.with_name(dest.name + ".part")
        try:
            _download(remote.url, part, retries, timeout)
            actual = file_digest(part, algo)
            if expected is not None and actual != expected:
                raise DownloadError(
                    f"{remote.url}: downloaded {part.stat().st_size:,} bytes whose {algo} is {actual}, "
                    f"expected {expected}: a different or corrupted file; nothing was kept"
                )
            if expected is None:
                log.warning(
                    "%s: accepted unverified (allow_unverified=true); its sha256 is %s: pin it in the "
                    "dataset config",
                    remote.url,
                    file_digest(part, "sha256"),
                )
            os.replace(part, dest)
            log.info(
                "downloaded %s (%s bytes, %s verified) to %s",
                remote.url,
                f"{dest.stat().st_size:,}",
                algo if expected else "not",
                dest,
            )
        except (KeyboardInterrupt, SystemExit):
            raise  # keep the .part: the next call resumes it
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return dest


MB = 1_000_000


def _progress(url: str, total: int | None, have: int) -> Progress | None:
    """MB received out of the announced size, logged with an ETA (none when the size is unknown or small)."""
    if total is None or total < 10 * MB:
        return None
    progress = Progress(log, f"download {url.rsplit('/', 1)[-1]}", total=max(total // MB, 1), unit="MB")
    progress.done = have // MB
    return progress


def _download(url: str, part: Path, retries: int, timeout: float) -> None:
    total: int | None = None
    attempts = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have >= total:
            break
        request = urllib.request.Request(url, headers={"User-Agent": "recbench"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = response.status
                if have and status == 200:  # server ignores Range: start over
                    have = 0
                if status == 206:
                    content_range = response.headers.get("Content-Range", "")
                    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
                        total = int(content_range.rsplit("/", 1)[1])
                else:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length is not None else None
                progress = _progress(url, total, have)
                with open(part, "ab" if have else "wb") as f:
                    got = have
                    while block := response.read(CHUNK):
                        f.write(block)
                        got += len(block)
                        if progress is not None:
                            progress.update(got // MB - progress.done)
        except urllib.error.HTTPError as e:
            if e.code == 416 and total is not None:  # nothing left to fetch
                break
            raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as e:
            if isinstance(e, urllib.error.URLError) and not part.exists():
                raise DownloadError(f"{url}: {e}") from None
            log.warning("%s: transfer interrupted (%s); resuming", url, e)
        got = part.stat().st_size if part.exists() else 0
        if total is None or got >= total:
            if total is not None and got > total:
                raise DownloadError(f"{url}: received {got:,} bytes, more than the announced {total:,}")
            break
        attempts += 1
        if attempts > retries:
            raise DownloadError(
                f"{url}: truncated: received {got:,} of {total:,} bytes after {retries} resumed attempts; "
                "nothing was kept"
            )
        log.warning("%s: %s of %s bytes; resuming (attempt %d)", url, f"{got:,}", f"{total:,}", attempts)
        time.sleep(min(2.0**attempts, 10.0) * 0.05)


def _check_members(archive: Path, z: zipfile.ZipFile, root: Path) -> list[zipfile.ZipInfo]:
    """Every member of ``z``, each checked to be a plain file or folder that stays inside ``root``: one bad
    member refuses the whole archive before anything is written."""
    members = z.infolist()
    for info in members:
        name = info.filename
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or "\\" in name:
            raise RefusedError(
                f"{archive}: member {name!r} has an absolute or Windows path; nothing was extracted"
            )
        if not (root / name).resolve().is_relative_to(root):
            raise RefusedError(
                f"{archive}: member {name!r} would be written outside {root}; nothing was extracted"
            )
        kind = (info.external_attr >> 16) & 0o170000  # the Unix file type, when a Unix zip recorded it
        if kind not in (0, 0o100000, 0o040000):  # unknown (DOS), regular file, folder: no links or devices
            raise RefusedError(
                f"{archive}: member {name!r} is not a plain file or folder (a link?); nothing was extracted"
            )
    return members


def extract_zip(archive: Path, root: Path) -> list[Path]:
    """Unzip ``archive`` into ``root``: all members checked first (:func:`_check_members`), then each
    extracted into a temporary folder beside its target and renamed into place."""
    root = root.resolve()
    out: list[Path] = []
    tmp = Path(tempfile.mkdtemp(prefix=".extract.", dir=root))
    try:
        with zipfile.ZipFile(archive) as z:
            for info in _check_members(archive, z, root):
                if info.is_dir():
                    continue
                target = (root / info.filename).resolve()
                staged = tmp / info.filename
                staged.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(staged, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                out.append(target)
    except zipfile.BadZipFile as e:
        raise DownloadError(f"{archive}: not a valid zip archive ({e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure_files(
    name: str,
    root: Path,
    files: dict[str, Path],
    downloads: list[RemoteFile] | None,
    howto: str,
) -> dict[str, Path]:
    """``files`` if they all exist; else download (and extract) ``downloads`` into ``root`` and check
    again; else a :class:`FileNotFoundError` that says what is missing and how to get it."""
    from recbench.data.amazon import missing_files_error

    missing = [p for p in files.values() if not p.is_file()]
    if missing and downloads:
        log.info("%s: %d source file(s) missing under %s; downloading", name, len(missing), root)
        for remote in downloads:
            path = fetch(remote, root)
            if remote.extract:
                extract_zip(path, root)
        missing = [p for p in files.values() if not p.is_file()]
    if missing:
        urls = "".join(f"\n  {r.url}" for r in downloads or [])
        raise missing_files_error(name, root, missing, howto + (f" Official files:{urls}" if urls else ""))
    return files
