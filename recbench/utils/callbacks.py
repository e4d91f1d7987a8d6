"""Callbacks that measure what a result row reports about cost, and keep a resumed run's record whole."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary

from recbench.utils.progress import duration

log = logging.getLogger(__name__)


class ResumableState(L.Callback):
    """A callback whose ``state_dict`` is restored only when a fit resumes from a checkpoint: validate/test
    on the selected checkpoint must not roll the run's record (or its random state) back to that epoch.
    Subclasses define ``state_dict`` and ``_restore``."""

    def _restore(self, state_dict: dict[str, Any]) -> None:
        raise NotImplementedError

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == "fit" and (state := checkpoint.get("callbacks", {}).get(self.state_key)):
            self._restore(state)


class EpochTimer(ResumableState):
    """Wall time of each training pass and validation pass, elapsed time at each epoch's end, and the
    monitored value of each validation pass with its epoch (to report when the selected epoch was reached;
    ``trainer.check_val_every_n_epoch`` > 1 validates some epochs only).

    Logs one line per epoch (the monitored value, the best so far, the pass times), so progress is
    visible with the progress bar off. Its history is saved in checkpoints: a run resumed with
    ``resume_from=`` reports the epochs and seconds of the whole run, not only of the resumed part.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.train_seconds: list[float] = []
        self.val_seconds: list[float] = []
        self.elapsed_at_epoch_end: list[float] = []
        self.monitored: list[float] = []
        self.validated_epochs: list[int] = []  # 1-based epoch of each validation pass
        self.validated_in_this_fit = 0  # validation passes of the fit run by this process (not restored)
        self._fit_start = self._t = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a resumed run continues the clock where its checkpoint left it
        done = self.elapsed_at_epoch_end[-1] if self.elapsed_at_epoch_end else 0.0
        self._fit_start = time.perf_counter() - done

    def state_dict(self) -> dict[str, Any]:
        return {
            "train_seconds": list(self.train_seconds),
            "val_seconds": list(self.val_seconds),
            "elapsed_at_epoch_end": list(self.elapsed_at_epoch_end),
            "monitored": list(self.monitored),
            "validated_epochs": list(self.validated_epochs),
        }

    def _restore(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = list(state_dict["train_seconds"])
        self.val_seconds = list(state_dict["val_seconds"])
        self.elapsed_at_epoch_end = list(state_dict["elapsed_at_epoch_end"])
        self.monitored = list(state_dict["monitored"])
        # checkpoints written before validated_epochs existed come from runs that validated every epoch
        self.validated_epochs = list(state_dict.get("validated_epochs", range(1, len(self.monitored) + 1)))
        # Checkpoints are written when validation ends, before that epoch's on_train_epoch_end: close the
        # saved epoch from its own pass times.
        while len(self.elapsed_at_epoch_end) < len(self.train_seconds):
            epoch = len(self.elapsed_at_epoch_end) + 1
            before = self.elapsed_at_epoch_end[-1] if self.elapsed_at_epoch_end else 0.0
            validated = bool(self.validated_epochs) and self.validated_epochs[-1] == epoch
            val = self.val_seconds[-1] if validated else 0.0
            self.elapsed_at_epoch_end.append(before + self.train_seconds[epoch - 1] + val)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t = time.perf_counter()

    def _close_train_pass(self) -> None:
        if len(self.train_seconds) == len(self.elapsed_at_epoch_end):  # this epoch's pass is not yet timed
            self.train_seconds.append(time.perf_counter() - self._t)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._close_train_pass()  # validation follows the train pass
            self._t = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.val_seconds.append(time.perf_counter() - self._t)
            self.monitored.append(float(trainer.callback_metrics[self.monitor]))
            self.validated_epochs.append(trainer.current_epoch + 1)
            self.validated_in_this_fit += 1
            best = self._best_pass()
            log.info(
                "epoch %d: %s %.4f (best %.4f at epoch %d) · train %.1f s · val %.1f s",
                self.validated_epochs[-1],
                self.monitor,
                self.monitored[-1],
                self.monitored[best],
                self.validated_epochs[best],
                self.train_seconds[-1] if self.train_seconds else 0.0,
                self.val_seconds[-1],
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_train_pass()  # an epoch without validation
        self.elapsed_at_epoch_end.append(time.perf_counter() - self._fit_start)

    def last_validation_is_best(self) -> bool:
        """The last validation pass of this process's fit scored the selected epoch: the weights in memory
        are those of the selected checkpoint and that pass's results are its validation results."""
        return self.validated_in_this_fit > 0 and self._best_pass() == len(self.monitored) - 1

    def _best_pass(self) -> int:
        """Index of the validation pass with the highest monitored value (first on ties, as ModelCheckpoint
        keeps)."""
        return max(range(len(self.monitored)), key=lambda i: (self.monitored[i], -i))

    def best_epoch(self) -> int:
        """1-based epoch of the selected validation pass (0 when nothing was validated)."""
        return self.validated_epochs[self._best_pass()] if self.monitored else 0


class KeepSelection(L.Callback):
    """Restores, on ``resume_from=``, each monitored ModelCheckpoint's record of the best epoch (its score
    and top-k), wherever the checkpoints were written.

    Lightning restores that record only when the resumed run writes checkpoints to the folder it came from
    (it restores ``best_model_path`` alone otherwise). Every run here writes to its own folder, so a resumed
    run would select among its resumed epochs only, and test a worse epoch whenever the best one came before
    the break. The best checkpoint stays where it was written: Lightning deletes files of the current
    folder only.
    """

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn != "fit":
            return
        states = checkpoint.get("callbacks", {})
        for cb in trainer.checkpoint_callbacks:
            if not isinstance(cb, ModelCheckpoint) or cb.monitor is None or cb.state_key not in states:
                continue
            state = states[cb.state_key]
            cb.best_model_score = state["best_model_score"]
            cb.best_model_path = state["best_model_path"]
            cb.best_k_models = dict(state.get("best_k_models", {}))
            cb.kth_best_model_path = state.get("kth_best_model_path", cb.kth_best_model_path)
            cb.kth_value = state.get("kth_value", cb.kth_value)


def check_selected(ckpt: str, best_epoch: int) -> None:
    """The checkpoint about to be validated and tested holds the epoch validation selected (1-based
    ``best_epoch``, from :class:`EpochTimer`'s record of every epoch): a row never reports one epoch's
    selection with another epoch's test numbers."""
    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"the selected checkpoint {ckpt} is gone: the test split cannot be scored")
    epoch = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["epoch"] + 1
    if epoch != best_epoch:
        raise RuntimeError(
            f"the checkpoint selected for testing ({ckpt}) holds epoch {epoch}, but validation selected "
            f"epoch {best_epoch}: refusing to write a row that mixes them"
        )


class RandomState(ResumableState):
    """Saves the random generators (python, numpy, torch CPU and CUDA) in each checkpoint and restores them
    on ``resume_from=``, so dropout after a resume draws what it would have drawn without the break.
    (Lightning runs the sanity validation under ``isolate_rng``, so it does not disturb the restored state.)
    """

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": _plain(np.random.get_state()),  # plain ints: checkpoints load with weights_only=True
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _restore(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        name, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def _plain(numpy_state: Any) -> tuple[str, list[int], int, int, float]:
    name, keys, pos, has_gauss, gauss = numpy_state
    return str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)


class TrainingEstimate(L.Callback):
    """Once per fit, after ``after_steps`` training steps (the first step, which warms up, not counted):
    one log line with the measured seconds per step and the estimated training time per epoch and to
    ``trainer.max_epochs`` (or ``max_steps``); validation passes come on top. On a CPU, when the estimate
    exceeds ``warn_hours``, a warning says what to do instead. Changes no number (not hashed)."""

    def __init__(self, after_steps: int = 20, warn_hours: float = 12.0) -> None:
        self.after_steps = after_steps
        self.warn_hours = warn_hours
        self._started: float | None = None
        self._steps = 0
        self._reported = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._reported:
            return
        if self._started is None:  # the end of the first step: measure from here
            self._started = time.perf_counter()
            return
        self._steps += 1
        per_epoch = trainer.num_training_batches
        if self._steps >= self.after_steps or self._steps + 1 >= per_epoch:
            self._reported = True
            self.report(trainer, (time.perf_counter() - self._started) / self._steps)

    def report(self, trainer: L.Trainer, seconds_per_step: float) -> None:
        per_epoch = trainer.num_training_batches
        if not isinstance(per_epoch, int) or per_epoch <= 0:
            log.info("training: %.2f s per step (steps per epoch unknown)", seconds_per_step)
            return
        epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
        steps_left = (epochs - trainer.current_epoch) * per_epoch if epochs else None
        if trainer.max_steps is not None and trainer.max_steps > 0:
            cap = trainer.max_steps - trainer.global_step
            steps_left = min(steps_left, cap) if steps_left is not None else cap
        limit = f"max_steps={trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else (
            f"max_epochs={epochs}")  # fmt: skip
        total = steps_left * seconds_per_step if steps_left is not None else None
        log.info(
            "training: %.2f s per step, %d steps per epoch: ~%s per epoch%s (training only; each "
            "validation pass comes on top, early stopping may end sooner)",
            seconds_per_step,
            per_epoch,
            duration(per_epoch * seconds_per_step),
            f", ~{duration(total)} to {limit}" if total is not None else "",
        )
        on_cpu = type(trainer.accelerator).__name__ == "CPUAccelerator"
        if on_cpu and total is not None and total > self.warn_hours * 3600:
            budget = self.warn_hours * 3600
            epochs_fit = int(budget / (per_epoch * seconds_per_step))
            fitting = (f"`trainer.max_epochs={epochs_fit}`" if epochs_fit >= 1
                       else f"`trainer.max_steps={max(1, int(budget / seconds_per_step))}`")  # fmt: skip
            log.warning(
                "training to %s would take ~%s on this CPU, more than %g h. To finish sooner: a GPU "
                "(`trainer=gpu`), a budget (%s fits in %g h; the row then says `stopped: cap`), or a "
                "smaller model (a smaller `model.net`). Set by callbacks.training_estimate.warn_hours.",
                limit,
                duration(total),
                self.warn_hours,
                fitting,
                self.warn_hours,
            )


class EpochCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose file names count epochs from 1, as the logs, the progress bar and the row
    do: ``best-epoch001.ckpt`` holds epoch 1 (the checkpoint's own ``epoch`` field stays Lightning's)."""

    def format_checkpoint_name(
        self,
        metrics: dict[str, torch.Tensor],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str | None = None,
    ) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver, prefix)

    @property
    def state_key(self) -> str:  # ModelCheckpoint's: checkpoints written before this class still resume
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)


class ModelSize(ModelSummary):
    """Lightning's model summary as one log line: each top-level module's type and parameters, and the
    totals. Lightning's table has a FLOPs column that reads 0 here (it counts only with an example input,
    which no recipe gives) and a second, borderless table of totals."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count

        cols = dict(summary_data)
        parts = [
            f"{n} {t} {p.strip()}" for n, t, p in zip(cols["Name"], cols["Type"], cols["Params"], strict=True)
        ]
        log.info(
            "model: %s; %s parameters (%s trainable), %.1f MB",
            ", ".join(parts),
            get_human_readable_count(total_parameters).strip(),
            get_human_readable_count(trainable_parameters).strip(),
            model_size,
        )


def progress_bar() -> L.Callback:
    """Lightning's progress bar (rich where installed), counting epochs from 1: ``Epoch 1/200``."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
    from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

    class RichEpochs(RichProgressBar):
        def _get_train_description(self, current_epoch: int) -> str:
            text = f"Epoch {current_epoch + 1}" + (
                f"/{self.trainer.max_epochs}" if self.trainer.max_epochs is not None else "")  # fmt: skip
            return f"{text:{len(self.validation_description)}}"

    class TQDMEpochs(TQDMProgressBar):
        def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
            super().on_train_epoch_start(trainer, *args)
            total = f"/{trainer.max_epochs}" if trainer.max_epochs is not None else ""
            self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}{total}")

    return RichEpochs() if _RICH_AVAILABLE else TQDMEpochs()
