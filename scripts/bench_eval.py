"""The evaluation pass against its floor: seconds of a validation pass (every user, full ranking, plain and
history-masked ranks) of a sequence model, next to the floor for the same cases — the user vectors given,
only chunked ``U @ Iᵀ``, a top-20 and the target's rank, float32, same threads — for each evaluation
batching order (``datamodule.eval_order``), and the network's forward alone over the same batches (what
the floor leaves out; with histories of 200 it is most of the pass). A benchmark, not a test: it writes a
JSON report and prints a table.

    python scripts/bench_eval.py [--threads 2] [--repeats 3] [--out outputs/bench/eval.json]
    python scripts/bench_eval.py --device cuda      # on a GPU (scripts/gpu_check.sh runs this)

Needs the benchmark files under RECBENCH_DATA_DIR. The networks are freshly initialised (seeded): the
cost of a pass does not depend on the weights. Each figure is the best of ``--repeats`` passes.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.apply_func import move_data_to_device

from recbench.inputs import RunContext, model_inputs
from recbench.lit.cf import CFModule
from recbench.metrics.ranking import target_ranks
from recbench.utils.environment import device_name, hardware, synchronize
from recbench.utils.files import atomic_write_text
from recbench.utils.instantiate import instantiate
from recbench.utils.quiet import quiet_console

CONF = str(Path(__file__).resolve().parents[1] / "conf")
CASES = {  # name -> overrides
    "sasrec/amazon_beauty": ["model=sasrec", "data=amazon_beauty"],
    "bert4rec/amazon_beauty": ["model=bert4rec", "data=amazon_beauty"],
    "gru4rec/amazon_beauty": ["model=gru4rec", "data=amazon_beauty"],
    "sasrec/ml_1m (history 200)": ["experiment=sasrec_ml1m"],
    "hstu/ml_1m (history 200)": ["experiment=hstu_ml1m"],
    "bprmf/amazon_sports": ["model=bprmf", "data=amazon_sports"],
    "multvae/amazon_beauty": ["model=multvae", "data=amazon_beauty"],
    "text_zeroshot/amazon_beauty": ["model=text_zeroshot", "data=amazon_beauty"],
    "sasrec_text/amazon_beauty": ["model=sasrec_text", "data=amazon_beauty"],
}


def build(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "logger=none"])
    L.seed_everything(0, verbose=False)
    dataset = instantiate(cfg.data)
    split = instantiate(cfg.protocol).split(dataset)
    dm = instantiate(cfg.datamodule)(dataset=dataset, split=split)
    net_inputs, recipe_inputs = model_inputs(cfg.model, RunContext(dataset, split, None))
    module = instantiate(cfg.model.module)(
        net=instantiate(cfg.model.net)(**net_inputs),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.model.optimizer),
        metrics=instantiate(cfg.metrics),
        **recipe_inputs,
    )
    return module, dm


def validation_seconds(module, dm, device: torch.device) -> float:
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.validate(module, datamodule=dm, verbose=False)
    return module.eval_seconds["val"]


def _val_batches(module, dm, device: torch.device) -> list:
    """The validation batches on ``device``, the module there in eval mode (loaded before any timing)."""
    module.to(device).eval()
    return [move_data_to_device(b, device) for b in dm.val_dataloader()]


def _seconds(device: torch.device, work) -> float:
    """Wall clock of ``work()``, the device synchronised on both sides."""
    synchronize(device)
    started = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - started


@torch.no_grad()
def floor_seconds(module, dm, device: torch.device) -> float:
    """Chunked scores of given user vectors, top-20 and the target's rank: nothing a pass can skip. A
    collaborative-filtering model has no user vector apart from its scoring (an embedding row, a fold-in
    of the history): its floor times the model's own scores."""
    batches = _val_batches(module, dm, device)
    cf = isinstance(module, CFModule)
    users = [None if cf else module.user_vectors(b) for b in batches]
    items = None if cf else module.net.item_embeddings()

    def rank() -> None:
        for u, b in zip(users, batches, strict=True):
            scores = module.score(b) if cf else u @ items.T
            scores.topk(20, dim=1)
            target_ranks(scores, b.targets)

    return _seconds(device, rank)


@torch.no_grad()
def forward_seconds(module, dm, device: torch.device) -> float:
    """The network's forward alone over the same batches (the user vectors, nothing scored): the part of
    a pass the floor leaves out, which long histories make the larger one."""
    batches = _val_batches(module, dm, device)
    return _seconds(device, lambda: [module.user_vectors(b) for b in batches])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=list(CASES), help=f"of {list(CASES)}")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/eval.json"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides for every case (e.g. data=synthetic)"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    quiet_console()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the per-trainer device lines
    report: dict[str, object] = {
        "threads": args.threads,
        "hardware": hardware(),
        "device": device_name(device),
        "cases": {},
    }
    print(
        f"{'case':<28} {'floor s':>8} {'given s':>8} {'x floor':>8} {'length s':>9} {'x floor':>8}"
        f" {'forward s':>10}"
    )
    for name in args.cases:
        figures: dict[str, float] = {}
        module, dm = build([*CASES[name], *args.overrides])
        for order in ("given", "length"):
            dm.eval_order = order  # the loaders are made per pass, from this
            figures[order] = min(validation_seconds(module, dm, device) for _ in range(args.repeats))
        figures["floor"] = min(floor_seconds(module, dm, device) for _ in range(args.repeats))
        if not isinstance(module, CFModule):  # a CF model's scoring is its floor: it has no forward apart
            figures["forward"] = min(forward_seconds(module, dm, device) for _ in range(args.repeats))
        figures |= {f"{o}_x_floor": figures[o] / figures["floor"] for o in ("given", "length")}
        report["cases"][name] = figures  # type: ignore[index]
        print(
            f"{name:<28} {figures['floor']:8.2f} {figures['given']:8.2f} {figures['given_x_floor']:8.2f}"
            f" {figures['length']:9.2f} {figures['length_x_floor']:8.2f}"
            f" {figures.get('forward', float('nan')):10.2f}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
