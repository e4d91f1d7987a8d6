"""Per-epoch training time (or closed-form fit time), evaluation time and peak memory of each model on one
dataset, beside RecBole 1.2.1's measured on the same data and machine. A benchmark, not a test: run it
alone on an idle machine.

    python scripts/bench_models.py [--epochs 2] [--threads 2] [--data amazon_beauty] [--models sasrec …]
    python scripts/bench_models.py --name cf \
        --models sasrec itemknn ease bprmf lightgcn simgcl multvae buir directau

Each model runs in its own process (scripts/bench_sasrec.py with ``model=<name>``), so its peak memory is
its own. Writes outputs/bench/models_<data>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from recbench.utils.files import atomic_write_text

HERE = Path(__file__).resolve().parent
# RecBole 1.2.1 on Amazon Beauty, 2 cores of this machine, RecBole's default settings (issue 14's figures).
RECBOLE_BEAUTY = {
    "gru4rec": {"seconds_per_epoch": 68.4, "peak_memory_mb": 2200},
    "sasrec": {"seconds_per_epoch": 175.0, "peak_memory_mb": 4800},
    "bert4rec": {"seconds_per_epoch": 465.0, "peak_memory_mb": 7100},
}
MODELS = ["sasrec", "gru4rec", "caser", "bert4rec", "hstu"]
# Models timed on the Amazon sets with the settings of their rows there rather than their model config's
# defaults: HSTU's defaults are its reference's ML-1M sizes (history 200); its Amazon rows use
# experiment=hstu_amazon.
AMAZON_SETTINGS = {"hstu": ["model=hstu", "experiment=hstu_amazon"]}
# Targets for the CF family on Beauty (2 threads): EASE's fit, ItemKNN's scoring of every test user, one
# LightGCN epoch (seconds), and EASE's peak memory.
CF_TARGETS = {"ease": "fit < 30 s, < 4 GB", "itemknn": "test eval < 10 s", "lightgcn": "epoch < 10 s"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default="amazon_beauty")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/bench"))
    parser.add_argument("--name", default="models", help="report name: <out-dir>/<name>_<data>.json")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every model")
    args = parser.parse_args()
    results = {}
    settings = AMAZON_SETTINGS if args.data.startswith("amazon_") else {}
    for model in args.models:
        out = args.out_dir / f"{model}_{args.data}.json"
        cmd = [
            sys.executable,
            str(HERE / "bench_sasrec.py"),
            "--epochs",
            str(args.epochs),
            "--out",
            str(out),
            *settings.get(model, [f"model={model}"]),
            f"data={args.data}",
            f"torch_threads={args.threads}",
            *args.overrides,
        ]
        print("running", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        results[model] = json.loads(out.read_text())
    reference = RECBOLE_BEAUTY if args.data == "amazon_beauty" else {}
    lines = [
        f"| model ({args.data}, {args.threads} threads) | s/epoch | fit s | RecBole s/epoch | ratio | "
        "val s | test eval s | peak MB | RecBole peak MB | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, r in results.items():
        ref = reference.get(model, {})
        ratio = f"{r['seconds_per_epoch'] / ref['seconds_per_epoch']:.2f}" if ref else "–"
        fit = r.get("fit_seconds")
        epoch = "–" if fit is not None else f"{r['seconds_per_epoch']:.1f}"
        lines.append(
            f"| {model} | {epoch} | {'–' if fit is None else f'{fit:.1f}'} | "
            f"{ref.get('seconds_per_epoch', '–')} | {ratio} | {r['val_seconds_per_epoch']:.1f} | "
            f"{r['test_seconds']:.1f} | {r['peak_memory_mb']:.0f} | {ref.get('peak_memory_mb', '–')} | "
            f"{CF_TARGETS.get(model, '')} |"
        )
    table = "\n".join(lines)
    report = {"data": args.data, "epochs": args.epochs, "threads": args.threads, "models": results}
    report["recbole_1_2_1"] = reference
    atomic_write_text(args.out_dir / f"{args.name}_{args.data}.json", json.dumps(report, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
