"""What every command does with an error the user caused: print its message as written, exit 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from recbench.errors import RecbenchError


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a :class:`RecbenchError` as ``error: <message>`` on stderr (no traceback: the message says what
    to fix) and exit with status 1. ``HYDRA_FULL_ERROR=1`` lets it propagate with its traceback."""
    try:
        yield
    except RecbenchError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
