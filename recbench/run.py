"""Train and evaluate one model on one dataset; write one result row.

    python -m recbench.run model=sasrec data=amazon_beauty
    python -m recbench.run -m seed=0,1,2

Reads top to bottom: data and protocol -> model recipe -> trainer -> fit (epoch chosen on validation)
-> validate and test the chosen checkpoint -> result row + predictions.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from recbench.results.builder import build_row, print_summary, write_predictions
from recbench.results.schema import ResultRow, write_row
from recbench.utils.callbacks import EpochTimer
from recbench.utils.environment import git_state

log = logging.getLogger(__name__)


def run(cfg: DictConfig, overrides: list[str] | None = None) -> ResultRow:
    """One run. ``overrides``: the command-line overrides that composed ``cfg``, recorded in the row as the
    command that reproduces it (taken from Hydra when called through ``main``)."""
    if cfg.torch_threads:  # oversubscribed intra-op threads spin at barriers: several runs on 2 cores crawl
        torch.set_num_threads(cfg.torch_threads)
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    code_version = git_state()  # the code that runs is the code at start, whatever changes later

    # 1. Data, evaluation protocol, item tokenizer.
    dataset = instantiate(cfg.data)
    protocol = instantiate(cfg.protocol)
    split = protocol.split(dataset)
    datamodule = instantiate(cfg.datamodule)(dataset=dataset, split=split)
    tokenizer = instantiate(cfg.tokenizer).fit(dataset.num_items)
    log.info(
        "%s: %d users, %d items, %d interactions; %d training targets",
        dataset.name,
        dataset.num_users,
        dataset.num_items,
        dataset.num_interactions,
        datamodule.num_train_targets,
    )

    # 2. The recipe: network, loss, metrics, optimizer. Sizes known only now are passed here.
    net = instantiate(cfg.model.net)(num_items=dataset.num_items)
    module = instantiate(cfg.model.module)(
        net=net,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.model.optimizer),
        metrics=instantiate(cfg.metrics),
        mask_history=protocol.mask_history,
    )

    # 3. Trainer: checkpoint and early stopping watch validation only, never test.
    timer = EpochTimer(monitor=cfg.monitor)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()] + [timer]
    logger = instantiate(cfg.logger) if cfg.logger else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)

    # 4. Fit, then evaluate the epoch selected on validation.
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("resume_from"))
    log.info("training finished in %.1f s", time.perf_counter() - started)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    ckpt = best or None  # no checkpoint (e.g. zero epochs): evaluate the weights as they are
    trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt)
    trainer.test(module, datamodule=datamodule, ckpt_path=ckpt)

    # 5. The result row and per-user predictions, written atomically, by one process under DDP.
    predictions = None
    if cfg.save_predictions and trainer.is_global_zero:
        predictions = write_predictions(module, dataset, out_dir / "predictions.parquet")
    row = build_row(
        cfg=cfg,
        dataset=dataset,
        split=split,
        protocol=protocol,
        tokenizer=tokenizer,
        module=module,
        trainer=trainer,
        timer=timer,
        predictions=predictions,
        git=code_version,
        overrides=overrides,
    )
    if trainer.is_global_zero:
        write_row(row, out_dir / "result.json")
        print_summary(row, out_dir / "result.json")
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()  # flush now: the next job of a sweep starts its own run
    return row


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    row = run(cfg, overrides=list(HydraConfig.get().overrides.task))
    return row.metrics["val"][cfg.monitor.removeprefix("val/")]  # what sweepers optimise: validation only


if __name__ == "__main__":
    main()
