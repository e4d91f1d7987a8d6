"""The GPU path, measured in one go (at most ~8 minutes on one GPU): SASRec's epoch in float32, bf16-mixed
and compiled; the evaluation pass against its floor; TIGER's and sid_gpt's training step and decode speed;
and whether the GPU scores the same weights as the CPU does. A benchmark, not a test.

    bash scripts/gpu_check.sh                 # on a GPU machine; Beauty/Sports/ML-1M under RECBENCH_DATA_DIR
    bash scripts/gpu_check.sh --dry-run       # every step on the CPU at toy size (the test suite runs it)

Where the Beauty files (or polars, which reads them) are absent, the steps run on Beauty-shaped synthetic
data (22,363 users, 12,101 items, 5-12 items each: the same tensor sizes) and the report says so. On an
offline GPU machine with another Python, ``bash scripts/gpu_wheels.sh`` (run where pip works) puts the
few packages it lacks into ``.whl/``, which ``gpu_check.sh`` installs first. Writes ``--out``
(default outputs/gpu_check/report.json) and prints one line per figure.

The agreement check trains SASRec one epoch on the device, then tests that checkpoint on the device and on
the CPU: the same weights must give the same ranks, up to float noise near ties (every case's rank is
compared; the check fails when N@10 differs by more than ``AGREEMENT_TOLERANCE``). Matrix products run in
full float32 on both (PyTorch's default, no TF32).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_eval  # noqa: E402  (scripts/ is not a package)
import bench_generative  # noqa: E402

from recbench.run import run  # noqa: E402
from recbench.utils.checkpoint_io import SafeCheckpointIO  # noqa: E402
from recbench.utils.environment import device_name  # noqa: E402
from recbench.utils.files import atomic_write_text  # noqa: E402
from recbench.utils.quiet import quiet_console  # noqa: E402

CONF = str(HERE.parent / "conf")
AGREEMENT_TOLERANCE = 1e-3  # |N@10 on the device - N@10 on the CPU| for the same checkpoint


def environment(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__}
    info["device"] = device_name(device)
    if device.type == "cuda":
        info |= {
            "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
            "memory_gb": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1),
            "bf16": torch.cuda.is_bf16_supported(),
            "cuda": torch.version.cuda,
        }
    try:
        import faiss

        info["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except ImportError:
        info["faiss_gpus"] = None  # faiss not installed here
    return info


BEAUTY_SHAPED = [  # data=synthetic at Amazon Beauty's size: same tensor shapes, no files needed
    "data=synthetic",
    "data.source.num_users=22363",
    "data.source.num_items=12101",
    "data.source.min_len=5",
    "data.source.max_len=12",
]


def has_data(name: str) -> bool:
    """Whether ``data=<name>`` can be read here: its folder exists, and polars (which parses it) imports."""
    root = Path(os.path.expanduser(os.environ.get("RECBENCH_DATA_DIR", "~/.cache/recbench/data")))
    folder = {"ml_1m": "movielens_1m"}.get(name, name)
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return (root / folder).is_dir()


def one_run(overrides: list[str], out: Path) -> Any:
    args = [*overrides, "logger=none", f"paths.output_dir={out}"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=args)
    return run(cfg, overrides=args)


def epoch_figures(row: Any) -> dict[str, Any]:
    c = row.cost
    return {
        "seconds_per_epoch": c.seconds_per_epoch,
        "val_seconds_per_epoch": c.val_seconds_per_epoch,
        "test_seconds": c.test_seconds,
        "peak_gpu_memory_mb": c.peak_gpu_memory_mb,
        "test_ndcg@10": row.metrics["test"]["ndcg@10"],
        "precision": row.hardware.precision,
    }


def test_on(module: Any, dm: Any, ckpt: str, accelerator: str) -> tuple[dict[str, float], np.ndarray]:
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        plugins=[SafeCheckpointIO()],
    )
    trainer.test(module, datamodule=dm, ckpt_path=ckpt, verbose=False)
    order = np.argsort(module.predictions["users"])
    return dict(module.results["test"]), module.predictions["plain"][order]


def agreement(overrides: list[str], ckpt: str, accelerator: str) -> dict[str, Any]:
    """The same checkpoint tested on the device and on the CPU."""
    module, dm = bench_eval.build(overrides)
    device_metrics, device_ranks = test_on(module, dm, ckpt, accelerator)
    cpu_metrics, cpu_ranks = test_on(module, dm, ckpt, "cpu")
    gap = abs(device_metrics["ndcg@10"] - cpu_metrics["ndcg@10"])
    return {
        "cases": len(cpu_ranks),
        "same_rank_share": float((device_ranks == cpu_ranks).mean()),
        "max_rank_difference": int(np.abs(device_ranks.astype(np.int64) - cpu_ranks).max()),
        "ndcg@10_device": device_metrics["ndcg@10"],
        "ndcg@10_cpu": cpu_metrics["ndcg@10"],
        "ndcg@10_gap": gap,
        "tolerance": AGREEMENT_TOLERANCE,
        "pass": gap <= AGREEMENT_TOLERANCE,
    }


@contextlib.contextmanager
def step(report: dict[str, Any], name: str):
    """Time a step and keep going when it fails: the report says what broke, the exit status says it."""
    started = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        yield
    except Exception as e:  # a benchmark script reports every step it can
        report["failed"][name] = f"{type(e).__name__}: {e}"
        print(f"   FAILED: {type(e).__name__}: {e}", flush=True)
    report["step_seconds"][name] = round(time.perf_counter() - started, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU at toy size")
    p.add_argument("--out", type=Path, default=Path("outputs/gpu_check/report.json"))
    args = p.parse_args(argv)
    quiet_console()
    if not args.dry_run and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device visible to PyTorch; --dry-run runs the steps on the CPU",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    accelerator = "cpu" if args.dry_run else "gpu"
    trainer = ["trainer=default"] if args.dry_run else ["trainer=gpu"]
    if args.dry_run:
        data, data_name = ["data=synthetic"], "synthetic (toy)"
    elif has_data("amazon_beauty"):
        data, data_name = ["data=amazon_beauty"], "amazon_beauty"
    else:
        data, data_name = BEAUTY_SHAPED, "Beauty-shaped synthetic (no Beauty files or no polars here)"
    toy = ["debug=fast"] if args.dry_run else []
    report: dict[str, Any] = {
        "mode": "dry-run (CPU, toy sizes)" if args.dry_run else "gpu",
        "environment": environment(device),
        "data": data_name,
        "failed": {},
        "step_seconds": {},
    }
    print(json.dumps(report["environment"]), flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    sasrec = ["model=sasrec", *data, *trainer, "trainer.max_epochs=1", *toy]
    ckpt = ""

    with step(report, "sasrec epoch, float32"):
        row = one_run(sasrec, work / "fp32")
        report["sasrec_fp32"] = epoch_figures(row)
        ckpt = str(next((work / "fp32" / "checkpoints").glob("best-*.ckpt")))
    if not args.dry_run:  # bf16 autocast and compilation are GPU options
        with step(report, "sasrec epoch, bf16-mixed"):
            report["sasrec_bf16"] = epoch_figures(
                one_run([*sasrec, "trainer.precision=bf16-mixed"], work / "bf16")
            )
        with step(report, "sasrec epoch, compiled"):
            report["sasrec_compiled"] = epoch_figures(one_run([*sasrec, "compile=true"], work / "compiled"))
    with step(report, "same weights on the device and the CPU"):
        if not ckpt:
            raise RuntimeError("no checkpoint: the float32 run failed")
        report["agreement"] = agreement(["model=sasrec", *data], ckpt, accelerator)
        if not report["agreement"]["pass"]:
            raise RuntimeError(f"N@10 differs by {report['agreement']['ndcg@10_gap']:.2e}")
    with step(report, "evaluation pass vs floor"):
        cases = ["sasrec/amazon_beauty", "bprmf/amazon_sports"]
        if not args.dry_run and has_data("ml_1m"):
            cases.append("sasrec/ml_1m (history 200)")
        extra = [] if data == ["data=amazon_beauty"] else data  # every case on the same synthetic data
        out = work / "eval.json"
        bench_eval.main([*extra, "--device", str(device), "--repeats", "1" if args.dry_run else "2",
                         "--out", str(out), "--cases", *cases])  # fmt: skip
        report["evaluation"] = json.loads(out.read_text())["cases"]
    with step(report, "generative models: training step and decoding"):
        size = ["--d", "32", "--layers", "1", "--steps", "2", "--decode-users", "8"] if args.dry_run else []
        out = work / "generative.json"
        bench_generative.main(["--device", str(device), "--out", str(out), *size])
        report["generative"] = json.loads(out.read_text())

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    if report["failed"]:
        print(
            f"gpu_check: {len(report['failed'])} step(s) failed: {', '.join(report['failed'])}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
