"""Wall time of the commands that should answer at once: help, a config error, listings (target: < 2 s
each on a 2-core CPU). A benchmark, not a test: run it on an idle machine.

    python scripts/bench_startup.py [--repeat 3]

Prints a markdown table (median of the repeats) and writes outputs/bench/startup.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from recbench.utils.files import atomic_write_text

COMMANDS = {
    "python -m recbench.run --help": ["-m", "recbench.run", "--help"],
    "python -m recbench.run trainer.max_epochs=abc": ["-m", "recbench.run", "trainer.max_epochs=abc"],
    "python -m recbench.run model.net.hiden=64": ["-m", "recbench.run", "model.net.hiden=64"],
    "python -m recbench.leaderboard --help": ["-m", "recbench.leaderboard", "--help"],
    "python -m recbench.list models": ["-m", "recbench.list", "models"],
}
TARGET_SECONDS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/startup.json"))
    args = parser.parse_args()
    results = {}
    for name, cmd in COMMANDS.items():
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, *cmd], capture_output=True, text=True)
            times.append(time.perf_counter() - started)
        results[name] = statistics.median(times)
    lines = ["| command | seconds (median) | target |", "|---|---|---|"]
    lines += [f"| `{n}` | {s:.2f} | < {TARGET_SECONDS:g} s |" for n, s in results.items()]
    atomic_write_text(args.out, json.dumps({"repeat": args.repeat, "seconds": results}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
