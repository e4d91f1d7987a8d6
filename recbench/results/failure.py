"""A run that fails keeps its folder (its log says why) and is marked failed there, in ``FAILED.json``.

The folder is kept rather than removed: the Hydra log, the config and any checkpoints written before the
failure are what a user needs to see what went wrong, and ``last.ckpt`` lets a run that broke in
training resume. The marker is what ``python -m recbench.leaderboard add`` checks before it takes a row,
and what tells the folder apart from one still running. A W&B run left open by the failure is finished
with exit code 1, so W&B shows it failed rather than running or crashed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from recbench.errors import RecbenchError
from recbench.utils.files import atomic_write_text

log = logging.getLogger(__name__)

FAILED_FILE = "FAILED.json"


@contextlib.contextmanager
def marked_on_failure(out_dir: str | Path) -> Iterator[None]:
    """Run the body; if it raises (or is interrupted), write ``<out_dir>/FAILED.json`` with the error,
    finish an open W&B run with exit code 1, and re-raise. A run that succeeds removes a marker left by
    an earlier failed run in the same folder."""
    out_dir = Path(out_dir)
    try:
        yield
    except BaseException as e:
        error = _describe(e)
        # Marking must never hide the error itself: a full disk may refuse the marker too.
        try:
            atomic_write_text(out_dir / FAILED_FILE, json.dumps(_record(e, error), indent=2) + "\n")
            # A user's error is printed whole by the entry point (recbench.utils.entry): name the marker only.
            said = "" if isinstance(e, RecbenchError) else f": {error}"
            log.error("run failed (marked %s)%s", out_dir / FAILED_FILE, said)
        except Exception as marking:
            log.error("run failed (could not mark %s failed either: %s): %s", out_dir, marking, error)
        _finish_wandb()
        raise
    (out_dir / FAILED_FILE).unlink(missing_ok=True)


def failure_of(folder: Path) -> str | None:
    """The error recorded in ``folder``'s failure marker, or None when the folder is not marked failed."""
    path = folder / FAILED_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["error"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"the failure marker {path} is unreadable"


def _describe(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt | SystemExit):  # Lightning turns Ctrl-C into sys.exit(1)
        return f"interrupted before it finished ({type(e).__name__})"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _record(e: BaseException, error: str) -> dict[str, object]:
    return {
        "status": "failed",
        "error": error,
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "traceback": traceback.format_exception(e),
    }


def _finish_wandb() -> None:
    """Finish the W&B run the failed run opened, if any (a run that never logged opened none)."""
    wandb = sys.modules.get("wandb")  # never imported here: a run without a W&B logger has nothing to finish
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    try:
        wandb.run.finish(exit_code=1)
    except Exception as e:
        log.warning("could not finish the W&B run %s as failed: %s", wandb.run, e)
