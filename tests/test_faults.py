"""Faults: nothing half-written, nothing lost, nothing run on load.

A full disk while writing a checkpoint, row or predictions leaves nothing under the final name (and no
temp file); written files get the user's umask; a checkpoint carrying pickled code is refused before
anything runs; a failed run is marked failed and ``leaderboard add`` refuses it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from recbench.errors import RefusedError
from recbench.leaderboard.__main__ import main as leaderboard_main
from recbench.leaderboard.build import add
from recbench.results.failure import FAILED_FILE, failure_of, marked_on_failure
from recbench.utils.callbacks import RandomState
from recbench.utils.checkpoint_io import SafeCheckpointIO
from recbench.utils.files import atomic_file, atomic_write_parquet, atomic_write_text

from .test_run import fast_run

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """A file object whose disk fills after ``room`` bytes: the bytes that fit are written (a truncated
    file, as on a real disk), then the write raises ENOSPC."""

    def __init__(self, f: Any, room: int) -> None:
        self.f, self.room = f, room

    def write(self, b: Any) -> int:
        if len(b) > self.room:
            self.f.write(bytes(b[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


@pytest.fixture
def disk_fills(monkeypatch):
    """The disk fills after 4 KiB of the next file torch.save writes into (through a file object, as
    SafeCheckpointIO does); ``fills["saves"]`` counts the saves that fit before it."""
    fills = {"saves": 0}
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, io.IOBase):
            fills["saves"] -= 1
            if fills["saves"] < 0:
                f = FullDisk(f, 4096)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return fills


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


def test_checkpoint_on_a_full_disk_leaves_no_file_and_says_which(tmp_path, disk_fills):
    path = tmp_path / "checkpoints" / "best-epoch001.ckpt"
    with pytest.raises(OSError, match=re.escape(f"No space left on device: '{path}'")) as e:
        SafeCheckpointIO().save_checkpoint({"w": torch.zeros(100_000)}, path)
    assert e.value.errno == errno.ENOSPC
    assert listing(path.parent) == []


def test_a_run_whose_disk_fills_at_the_best_checkpoint_leaves_no_checkpoint(tmp_path, disk_fills):
    """Through the Trainer: the first checkpoint written is epoch 1's best; the run fails with ENOSPC
    naming it, and the checkpoint folder holds no file (no truncated best-epoch001.ckpt, no temp file)."""
    with pytest.raises(OSError, match=r"No space left on device: .*best-epoch001\.ckpt") as e:
        fast_run(tmp_path)
    assert e.value.errno == errno.ENOSPC
    assert listing(tmp_path / "checkpoints") == []
    assert not (tmp_path / "result.json").exists()


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


@pytest.mark.slow
def test_a_real_full_disk_leaves_no_checkpoint(tmp_path):
    """A 1 MiB tmpfs holds no checkpoint of the synthetic SASRec (1.4 MB): the run fails with ENOSPC and
    the filesystem is left empty. Lightning's own TorchCheckpointIO leaves a truncated 1 MiB file there."""
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(OSError, match="No space left on device") as e:
            fast_run(
                tmp_path / "run",
                f"callbacks.model_checkpoint.dirpath={small}",
                f"callbacks.last_checkpoint.dirpath={small}",
            )
        assert e.value.errno == errno.ENOSPC
        assert listing(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


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
        "checkpoints/best-epoch001.ckpt",
    ):
        assert mode(tmp_path / name) == 0o644, name


# -- loading never runs code -------------------------------------------------------------------------------


class Payload:
    """Unpickling it runs a shell command: creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("forced_off", [False, True])
def test_a_checkpoint_carrying_code_is_refused_naming_the_file(tmp_path, monkeypatch, forced_off):
    """resume_from= a file whose unpickling would run a command: refused before anything runs, even with
    torch's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set (it overrides only a load that leaves weights_only unset)."""
    if forced_off:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"epoch": 0, "state_dict": {}, "callbacks": {"x": Payload(marker)}}, ckpt)
    refused = re.escape(f"refusing to load checkpoint {ckpt}: ") + ".*GLOBAL posix.system"
    with pytest.raises(RefusedError, match=refused):
        fast_run(tmp_path / "run", f"+resume_from={ckpt}")
    assert not marker.exists()


def test_random_state_survives_a_weights_only_load():
    """RandomState's python and numpy states are plain ints and tuples: they load with weights_only=True
    and restore the generators exactly."""
    random.seed(1)
    np.random.seed(2)
    saved = RandomState().state_dict()
    expected = random.random(), np.random.rand()
    buffer = io.BytesIO()
    torch.save({"callbacks": {"RandomState": saved}}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["callbacks"]["RandomState"]
    random.seed(3)
    np.random.seed(4)
    RandomState()._restore(loaded)
    assert (random.random(), np.random.rand()) == expected


# -- a failed run is marked, and the leaderboard refuses it ------------------------------------------------


class FakeRun:
    exit_code: int | None = None

    def finish(self, exit_code: int | None = None) -> None:
        self.exit_code = exit_code


def test_a_failure_is_marked_and_finishes_the_wandb_run(tmp_path, monkeypatch):
    run = FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", type(sys)("wandb"))
    monkeypatch.setattr(sys.modules["wandb"], "run", run, raising=False)
    with pytest.raises(ValueError, match="bad lr"), marked_on_failure(tmp_path):
        raise ValueError("bad lr")
    record = json.loads((tmp_path / FAILED_FILE).read_text())
    assert record["status"] == "failed" and record["error"] == "ValueError: bad lr"
    assert "raise ValueError" in "".join(record["traceback"])
    assert failure_of(tmp_path) == "ValueError: bad lr"
    assert run.exit_code == 1
    with marked_on_failure(tmp_path):  # a later run into the same folder that succeeds
        pass
    assert failure_of(tmp_path) is None and listing(tmp_path) == []


def test_a_failure_that_cannot_be_marked_still_raises_its_own_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # the run folder's place is taken by a file: the marker cannot be written
    with pytest.raises(RuntimeError, match="training diverged"), marked_on_failure(blocked):
        raise RuntimeError("training diverged")


def cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "recbench.run", "data=synthetic", "debug=fast", f"hydra.run.dir={tmp_path}"]
    return subprocess.run([*cmd, *overrides], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("case", "overrides", "error"),
    [
        ("bad value", ["+model.task=nonsense"], "ValueError: model=sasrec: model.task is 'nonsense'"),
        (  # ml_100k downloads what is missing: offline, the download fails inside the run
            "missing data",
            [
                "data=ml_100k_raw",
                "paths.data_dir={tmp}/none",
                "paths.cache_dir={tmp}/cache",
                "data.source.downloads.0.url=http://127.0.0.1:9/ml-100k.zip",
            ],
            "127.0.0.1:9",
        ),
        (
            "exception in training",  # Adam refuses it when Lightning builds the optimizer, in fit
            ["logger=wandb", "+model.optimizer.betas=[2.0,0.999]"],
            "Invalid beta parameter at index 0: 2.0",
        ),
    ],
)
def test_a_failed_run_is_marked_and_refused_by_the_leaderboard(tmp_path, capsys, case, overrides, error):
    run_dir = tmp_path / "run"
    out = cli(run_dir, *(o.format(tmp=tmp_path) for o in overrides))
    assert out.returncode != 0
    assert (run_dir / FAILED_FILE).is_file(), out.stderr[-3000:]
    recorded = failure_of(run_dir)
    assert recorded is not None and error in recorded
    assert f"run failed (marked {run_dir / FAILED_FILE})" in out.stderr + out.stdout
    if "logger=wandb" in overrides:  # the offline W&B run was finished as failed
        (log,) = run_dir.glob("wandb/offline-run-*/logs/debug.log")
        assert "got exitcode: 1" in log.read_text()
    assert leaderboard_main(["--root", str(tmp_path / "lb"), "add", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert f"{run_dir}: the run failed ({recorded}); refusing to add it" in err
    assert not (tmp_path / "lb").exists()


def test_the_leaderboard_refuses_unfinished_and_failed_folders(tmp_path):
    """No result.json: the run did not finish. A sweep folder holding a failed run: refused whole (nothing
    added), naming the failed run; a result.json whose folder is marked failed is refused too."""
    unfinished = tmp_path / "unfinished"
    (unfinished / ".hydra").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no result\.json in this folder: the run did not finish"):
        add([unfinished], tmp_path / "lb")
    sweep = tmp_path / "sweep"
    (sweep / "0_ok").mkdir(parents=True)
    (sweep / "0_ok" / "result.json").write_text("{}")
    with pytest.raises(ValueError), marked_on_failure(sweep / "1_failed"):
        raise ValueError("val/ndcg@10 is nan")
    with pytest.raises(RefusedError, match=r"holds 1 failed run\(s\); refusing to add any") as e:
        add([sweep], tmp_path / "lb")
    assert f"{sweep / '1_failed'}: ValueError: val/ndcg@10 is nan" in str(e.value)
    (sweep / "1_failed" / "result.json").write_text("{}")
    with pytest.raises(RefusedError, match="the run failed"):
        add([sweep / "1_failed" / "result.json"], tmp_path / "lb")
    assert not (tmp_path / "lb").exists()
