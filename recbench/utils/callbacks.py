"""Callbacks that measure what a result row reports about cost."""

from __future__ import annotations

import time

import lightning as L


class EpochTimer(L.Callback):
    """Wall time of each training pass and validation pass, elapsed time at each epoch's end, and the
    monitored validation value of each epoch (to report when the selected epoch was reached)."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.train_seconds: list[float] = []
        self.val_seconds: list[float] = []
        self.elapsed_at_epoch_end: list[float] = []
        self.monitored: list[float] = []
        self._fit_start = self._t = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t = time.perf_counter()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.train_seconds.append(time.perf_counter() - self._t)  # validation follows the train pass
            self._t = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.val_seconds.append(time.perf_counter() - self._t)
            self.monitored.append(float(trainer.callback_metrics[self.monitor]))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.elapsed_at_epoch_end.append(time.perf_counter() - self._fit_start)

    def best_epoch(self) -> int:
        """1-based epoch with the highest monitored value (first one on ties, as ModelCheckpoint keeps)."""
        if not self.monitored:
            return 0
        return max(range(len(self.monitored)), key=lambda i: (self.monitored[i], -i)) + 1
