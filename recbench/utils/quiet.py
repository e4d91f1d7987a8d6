"""Console lines a newcomer takes for errors, silenced at their source: each is a library's notice about
a situation recbench creates on purpose (or a duplicate of a line already shown)."""

from __future__ import annotations

import logging
import warnings

# (warning message regex, why it is harmless here)
WARNINGS = (
    (r".*isinstance\(treespec, LeafSpec\)", "Lightning's own use of a deprecated torch API"),
    (r".*Your `IterableDataset` has `__len__` defined", "our loaders run in the main process"),
    (r".*smaller than the logging interval Trainer\(log_every_n_steps", "short epochs log at their end"),
    (r".*does not have many workers which may be a bottleneck", "num_workers 0 is the measured best here"),
)
# Lightning's advertisements for its cloud services, and its note that our ModelSize replaces its summary
TIPS = ("litlogger", "LitLogger", "litmodels", "Skipping setting a default `ModelSummary`")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(tip in message for tip in TIPS)


_DROP_TIPS = _DropTips()  # one instance: addFilter keeps it once however many jobs a sweep runs


def quiet_console() -> None:
    """Drop the notices in :data:`WARNINGS` and Lightning's tips, and let Lightning's INFO lines reach the
    console once (through the root handler that also writes run.log), not twice."""
    for pattern, _ in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    hydra_handles = bool(logging.getLogger().handlers)  # Hydra's handlers print and write run.log
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        if hydra_handles:  # Lightning's own console handlers would print each line a second time
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DROP_TIPS)
    # faiss tries its AVX-512 and AVX2 builds first and logs each miss as an INFO traceback-like line
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
