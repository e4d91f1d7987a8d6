"""Train and evaluate one model on one dataset; write one result row.

    python -m recbench.run model=sasrec data=amazon_beauty
    python -m recbench.run -m seed=0,1,2
    python -m recbench.run data=esci_us_150 model=bm25 protocol=esci_rerank   # a search model

Reads top to bottom: data and protocol -> model recipe -> trainer -> fit (epoch chosen on validation)
-> validate and test the chosen checkpoint -> result row + predictions.

Each model config says its task (``model.task``, ``next_item`` when absent). Search models (query ->
ranked products) take their own, shorter pipeline: :func:`recbench.search.run.run_search`. Zero-shot
models (``model.zero_shot: true``) skip fitting: the row reports 0 epochs and best_epoch 0.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from recbench.results.failure import marked_on_failure
from recbench.utils.config_check import check_command_line, check_values
from recbench.utils.entry import user_errors
from recbench.utils.instantiate import check_targets, instantiate

if TYPE_CHECKING:
    from recbench.results.schema import ResultRow

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def run(cfg: DictConfig, overrides: list[str] | None = None) -> ResultRow:
    """One run. ``overrides``: the command-line overrides that composed ``cfg``, recorded in the row as the
    command that reproduces it (taken from Hydra when called through ``main``)."""
    # Torch, Lightning and the data code load here, not at import: `--help` and config errors answer at once.
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import WandbLogger

    from recbench.data.dataset import SequenceDataset
    from recbench.inputs import RunContext, model_inputs
    from recbench.results.builder import build_row, print_summary, write_predictions
    from recbench.results.schema import write_row
    from recbench.utils.callbacks import EpochTimer, KeepSelection, RandomState, check_selected, progress_bar
    from recbench.utils.checkpoint_io import SafeCheckpointIO
    from recbench.utils.environment import git_state, reset_peak_memory
    from recbench.utils.quiet import quiet_console

    check_values(cfg)  # types and ranges of the keys users set most, before any data is read
    quiet_console()  # library notices that read as errors, and Lightning's lines printed twice
    if cfg.torch_threads:  # oversubscribed intra-op threads spin at barriers: several runs on 2 cores crawl
        torch.set_num_threads(cfg.torch_threads)
    check_targets(cfg)  # every _target_ it would call is allowed, before any work (utils/instantiate.py)
    reset_peak_memory()  # the row's peak memory is this run's, also as one job of a sweep in one process
    task = cfg.model.get("task", "next_item")
    if task == "search":
        from recbench.search.run import run_search

        return run_search(cfg, overrides=overrides)
    if task != "next_item":
        raise ValueError(f"model={cfg.model.name}: model.task is {task!r}; expected next_item or search")
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    code_version = git_state()  # the code that runs is the code at start, whatever changes later

    # 1. Data, evaluation protocol, item tokenizer.
    dataset = instantiate(cfg.data)
    if not isinstance(dataset, SequenceDataset):
        raise TypeError(f"data={cfg.data.name} is not a sequence dataset; model={cfg.model.name} needs one")
    protocol = instantiate(cfg.protocol)
    split = protocol.split(dataset)
    datamodule = instantiate(cfg.datamodule)(dataset=dataset, split=split)
    tokenizer = instantiate(cfg.tokenizer).fit(dataset, split)  # split: what a tokenizer may learn from
    log.info(
        "%s: %d users, %d items, %d interactions; %d training targets",
        dataset.name,
        dataset.num_users,
        dataset.num_items,
        dataset.num_interactions,
        datamodule.num_train_targets,
    )

    # 2. The recipe: network, loss, metrics, optimizer, and the runtime inputs the model config names
    # (model.inputs: num_items, item_text, item_codes … built in recbench/inputs.py).
    net_inputs, recipe_inputs = model_inputs(cfg.model, RunContext(dataset, split, tokenizer))
    net = instantiate(cfg.model.net)(**net_inputs)
    if cfg.get("compile"):  # the forward compiled in place: same parameters, same checkpoint keys
        net.compile(**compile_options(cfg.compile))
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
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    # A checkpoint without a monitor (last.ckpt) goes after the monitored ones, so that what it saves holds
    # their state of this epoch: a resume then selects the same best epoch as an unbroken run.
    callbacks.sort(key=lambda c: isinstance(c, ModelCheckpoint) and c.monitor is None)
    callbacks += [timer, RandomState(), KeepSelection()]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(progress_bar())  # Lightning's, counting epochs from 1 like every other line
    logger = instantiate(cfg.logger) if cfg.logger else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, plugins=[SafeCheckpointIO()])

    # 4. Fit, then evaluate the epoch selected on validation.
    started = time.perf_counter()
    if cfg.model.get("zero_shot", False):
        log.info("zero-shot model: nothing to train; evaluating as constructed (best_epoch 0)")
    else:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("resume_from"))
        log.info("training finished in %.1f s", time.perf_counter() - started)
    selecting = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None) == cfg.monitor]
    best = selecting[0].best_model_path if selecting else ""  # never last.ckpt: that is the last epoch
    ckpt = best or None  # no checkpoint (e.g. zero epochs): evaluate the weights as they are
    if ckpt:
        check_selected(ckpt, timer.best_epoch())
    if ckpt and timer.last_validation_is_best():  # same weights, deterministic evaluation: reuse the pass
        log.info("the selected epoch is the last one validated: its validation pass is reused")
    else:
        trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
    trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)  # the summary shows them

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
        index=net.index_info() if hasattr(net, "index_info") else None,
        sampled=datamodule.describe_sampled() if hasattr(datamodule, "describe_sampled") else None,
    )
    if trainer.is_global_zero:
        write_row(row, out_dir / "result.json")
        print_summary(row, out_dir / "result.json")
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()  # flush now: the next job of a sweep starts its own run
    return row


def compile_options(value: object) -> dict[str, str]:
    """``compile=true`` or ``compile=<mode>`` (checked by ``check_values``) as ``torch.compile``'s
    keyword arguments."""
    return {} if value is True else {"mode": str(value)}


# An absolute config path: Hydra resolves a relative one against the caller, which `recbench run` is not.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    # A failed run's folder gets FAILED.json (`leaderboard add` refuses it); a user's error prints as text.
    with user_errors(), marked_on_failure(cfg.paths.output_dir):
        row = run(cfg, overrides=list(HydraConfig.get().overrides.task))
    if "val" not in row.metrics:  # search rows: zero-shot, no validation queries, nothing to optimise
        return float("nan")
    return row.metrics["val"][cfg.monitor.removeprefix("val/")]  # what sweepers optimise: validation only


HELP = """usage: python -m recbench.run [group=option …] [key=value …] [-m]      (or: recbench run …)

Trains and evaluates one model on one dataset and writes one result row; -m runs a sweep
(seed=0,1,2, model.net.l2=200,500 …) and prints a summary table at the end.

Config groups (group=option; `python -m recbench.list <kind>` says what each option is):
{groups}

Keys: any key of the composed config, e.g. trainer.max_epochs=50 seed=1 model.optimizer.lr=0.0005
  show the composed config:  python -m recbench.run --cfg job [overrides]
  Hydra's own help:          python -m recbench.run --hydra-help
"""


def usage() -> str:
    """The --help text, from the config folders (Hydra's own --help takes seconds to list them)."""
    groups = sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    lines = []
    for group in groups:
        options = ", ".join(sorted(f.stem for f in group.glob("*.yaml")))
        lines.append(
            textwrap.fill(
                options, 108, initial_indent=f"  {group.name + ':':<16} ", subsequent_indent=" " * 19
            )
        )
    return HELP.format(groups="\n".join(lines))


def cli() -> None:
    """``python -m recbench.run …``: an unknown key or a value of the wrong kind on the command line is
    refused before Hydra composes it (with the closest keys that exist), then Hydra runs :func:`main`."""
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(usage())
        return
    with user_errors():
        check_command_line(sys.argv[1:], CONF_DIR)
    main()


if __name__ == "__main__":
    cli()
