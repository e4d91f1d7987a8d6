"""Errors a user can cause (a bad file, a bad config value, a refused row), as one family.

The entry points (``recbench.run``, ``recbench.data``, ``recbench.leaderboard``) print a
:class:`RecbenchError` as its message alone, without a traceback; ``HYDRA_FULL_ERROR=1`` shows everything.
Each class also derives from the builtin it refines, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from pathlib import Path


class RecbenchError(Exception):
    """Base of every error whose message says what the user should fix."""


class DataError(RecbenchError, ValueError):
    """A source or cache file is malformed or does not match what its config pins: the message names the
    file (and line and field where there is one)."""


class MissingDataError(RecbenchError, FileNotFoundError):
    """Source files are absent: the message lists them and says how to get them."""

    missing: list[Path] | None = None  # the absent files, where the raiser knows them
    root: Path | None = None  # the folder they belong in


class ConfigError(RecbenchError, ValueError):
    """A config key or override is wrong: the message names the key, the value and what was expected."""


class RefusedError(RecbenchError, PermissionError):
    """Refused for safety: a row, override or config would run code or trust an unverified input."""
