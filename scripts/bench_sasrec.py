"""Speed of SASRec on Amazon Beauty: seconds per training epoch, validation and full test evaluation
seconds, peak memory. A benchmark, not a test: it writes a JSON report and prints it.

    python scripts/bench_sasrec.py [--epochs 3] [--out outputs/bench/sasrec_beauty.json] [override ...]

Needs the Beauty files under RECBENCH_DATA_DIR. Quality numbers come from full runs (`make repro`);
this measures cost only, on whatever machine runs it (the report records the hardware).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from recbench.run import run
from recbench.utils.files import atomic_write_text

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/sasrec_beauty.json"))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    run_dir = args.out.parent / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = [
        "model=sasrec",
        "data=amazon_beauty",
        "logger=none",
        "save_predictions=false",
        f"trainer.max_epochs={args.epochs}",
        "trainer.enable_progress_bar=false",
        "callbacks.early_stopping.patience=1000",
        f"paths.output_dir={run_dir}",
        *args.overrides,
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    started = time.perf_counter()
    row = run(cfg, overrides=overrides)
    report = {
        "what": f"{cfg.model.name} on {cfg.data.name}, {args.epochs} epochs, cost only",
        "command": " ".join(["python scripts/bench_sasrec.py", f"--epochs {args.epochs}", *args.overrides]),
        "overrides": overrides,
        "seconds_per_epoch": row.cost.seconds_per_epoch,
        "val_seconds_per_epoch": row.cost.val_seconds_per_epoch,
        "test_seconds": row.cost.test_seconds,
        "fit_seconds": row.cost.fit_seconds,  # closed-form models (EASE, ItemKNN); None for trained ones
        "peak_memory_mb": row.cost.peak_memory_mb,
        "wall_seconds": time.perf_counter() - started,
        "hardware": row.hardware.model_dump(),
        "git": row.git.model_dump(),
        "created_at": row.created_at.isoformat(),
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
