"""Experiment loggers. W&B is online only when the user is logged in; otherwise it runs offline and
says how to upload the run later. No key or secret is ever written into a config, log or result row."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, WandbLogger

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        return path.is_file() and netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_logger(
    project: str,
    save_dir: str,
    mode: str = "auto",
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    entity: str | None = None,
) -> WandbLogger:
    """``mode``: auto (online if logged in, else offline), online, offline."""
    if mode not in ("auto", "online", "offline"):
        raise ValueError(f"logger.mode must be auto, online or offline, got {mode!r}")
    offline = mode == "offline" or (mode == "auto" and not wandb_logged_in())
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        project=project,
        save_dir=save_dir,
        name=name,
        group=group,
        tags=list(tags or []),
        entity=entity,
        offline=offline,
        settings={"silent": True},
    )
    logger._wandb_init.pop("anonymous", None)  # Lightning passes None; wandb warns it "has no effect"
    if offline:
        log.info(
            "W&B is offline (no API key found). Upload later with: wandb sync %s/wandb/offline-run-*",
            save_dir,
        )
    return logger


def csv_logger(save_dir: str, name: str = "csv") -> CSVLogger:
    return CSVLogger(save_dir=save_dir, name=name, version="")
