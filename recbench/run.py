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
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from recbench.results.builder import build_row, print_summary, write_predictions
from recbench.results.schema import ResultRow, write_row
from recbench.utils.callbacks import EpochTimer

log = logging.getLogger(__name__)


def generative_inputs(tokenizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(net kwargs, recipe kwargs) of a generative model: codebook sizes; item codes and how many of
    their levels are semantic (the rest de-duplicate)."""
    return {"code_sizes": tokenizer.code_sizes}, {
        "item_codes": tokenizer.codes(),
        "semantic_levels": tokenizer.semantic_levels,
    }


def run(cfg: DictConfig) -> ResultRow:
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)

    # 1. Data, evaluation protocol, item tokenizer.
    dataset = instantiate(cfg.data)
    protocol = instantiate(cfg.protocol)
    split = protocol.split(dataset)
    datamodule = instantiate(cfg.datamodule)(dataset=dataset, split=split)
    tokenizer = instantiate(cfg.tokenizer).fit(dataset)
    log.info(
        "%s: %d users, %d items, %d interactions; %d training targets",
        dataset.name,
        dataset.num_users,
        dataset.num_items,
        dataset.num_interactions,
        datamodule.num_train_targets,
    )

    # 2. The recipe: network, loss, metrics, optimizer. Sizes known only now are passed here.
    # Generative (semantic-ID) models take their vocabulary and targets from the tokenizer.
    net_sizes, recipe_inputs = generative_inputs(tokenizer) if cfg.model.get("generative") else ({}, {})
    net = instantiate(cfg.model.net)(num_items=dataset.num_items, **net_sizes)
    module = instantiate(cfg.model.module)(
        net=net,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.model.optimizer),
        metrics=instantiate(cfg.metrics),
        mask_history=protocol.mask_history,
        **recipe_inputs,
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

    # 5. The result row and per-user predictions, both written atomically.
    predictions = (
        write_predictions(module, dataset, out_dir / "predictions.parquet") if cfg.save_predictions else None
    )
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
    )
    write_row(row, out_dir / "result.json")
    print_summary(row, out_dir / "result.json")
    if logger and hasattr(logger, "experiment") and cfg.logger.get("_target_", "").endswith("wandb_logger"):
        import wandb

        wandb.finish()
    return row


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    row = run(cfg)
    return row.metrics["val"][cfg.monitor.removeprefix("val/")]  # what sweepers optimise: validation only


if __name__ == "__main__":
    main()
