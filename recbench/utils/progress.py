"""Progress of long steps outside Lightning's loop (text encoding, tokenizer fits, decoding): log lines
with the count, the total, the elapsed time and an estimate of the time left, at most every
``every_seconds`` (and at the end), so that no step is silent for minutes, in the console and in run.log.
"""

from __future__ import annotations

import logging
import time


def duration(seconds: float) -> str:
    """12 s, 3 min, 1.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """``Progress(log, "rqvae", total=200, unit="epoch")``, then ``.update(note="loss …")`` once per unit."""

    def __init__(
        self, logger: logging.Logger, what: str, total: int, unit: str, every_seconds: float = 10.0
    ) -> None:
        self.log, self.what, self.total, self.unit = logger, what, total, unit
        self.every_seconds = every_seconds
        self.done = 0
        self.started = time.perf_counter()
        self._last = self.started
        self.log.info("%s: %d %ss to go", what, total, unit)

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last < self.every_seconds and self.done < self.total:
            return
        self._last = now
        elapsed = now - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = "done" if self.done >= self.total else f"~{duration(left)} left"
        self.log.info(
            "%s: %s %d/%d (%d%%), %s elapsed, %s%s",
            self.what,
            self.unit,
            self.done,
            self.total,
            100 * self.done // max(self.total, 1),
            duration(elapsed),
            eta,
            f" · {note}" if note else "",
        )
