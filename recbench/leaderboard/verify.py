"""Re-run a result row's recorded command and report how far each metric moved.

CPU runs are deterministic (``trainer.deterministic: true``, seeded data order, seeded initialisation):
the same code, data and seed on a CPU reproduce every metric exactly, so the default tolerance is 0.
GPU kernels are not bit-reproducible; pass ``--tolerance`` for rows made on a GPU.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from recbench.results.schema import ResultRow, read_row
from recbench.utils.environment import git_state

WHERE = ("hydra.run.dir=", "hydra.sweep.", "paths.output_dir=", "paths.log_dir=", "logger=", "logger.")
# A run resumed from its own checkpoints equals the unbroken one: shown and re-run without this argument.
RESUMED = "resume_from="


@dataclass
class Difference:
    split: str
    metric: str
    recorded: float
    reproduced: float

    @property
    def delta(self) -> float:
        return self.reproduced - self.recorded


def rerun(row: ResultRow, workdir: Path) -> ResultRow:
    args = shlex.split(row.command)
    if args[:3] != ["python", "-m", "recbench.run"]:
        raise ValueError(f"row command is not a recbench run: {row.command!r}")
    # Where the run writes and how it logs change no number (they are outside the config hash): the
    # re-run writes to its own folder, never over the recorded run.
    kept = [a for a in args[3:] if not a.startswith((*WHERE, RESUMED))]
    cmd = [
        sys.executable,
        "-m",
        "recbench.run",
        *kept,
        f"hydra.run.dir={workdir}",
        f"paths.output_dir={workdir}",
        "logger=none",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"re-running {' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return read_row(workdir / "result.json")


def compare(recorded: ResultRow, reproduced: ResultRow) -> list[Difference]:
    diffs = []
    for split, values in recorded.metrics.items():
        for name, value in values.items():
            diffs.append(
                Difference(split, name, value, reproduced.metrics.get(split, {}).get(name, float("nan")))
            )
    return diffs


def verify(row_file: Path, tolerance: float = 0.0) -> bool:
    row = read_row(row_file)
    here = git_state()
    if here["sha"] != row.git.sha or here["dirty"]:
        print(
            f"warning: row made at commit {row.git.sha}, this checkout is {here['sha']}"
            f"{' with uncommitted changes' if here['dirty'] else ''}: differences may come from the code"
        )
    with tempfile.TemporaryDirectory(prefix="recbench-verify-") as tmp:
        new = rerun(row, Path(tmp) / "run")
    if new.config_hash != row.config_hash:
        print(f"warning: config hash differs ({row.config_hash[:12]} recorded, {new.config_hash[:12]} now)")
    diffs = compare(row, new)
    worst = max((abs(d.delta) for d in diffs), default=0.0)
    print(f"{'split':<24} {'metric':<12} {'recorded':>12} {'reproduced':>12} {'difference':>12}")
    for d in diffs:
        print(f"{d.split:<24} {d.metric:<12} {d.recorded:12.8f} {d.reproduced:12.8f} {d.delta:+12.2e}")
    ok = worst <= tolerance
    print(f"{'PASS' if ok else 'FAIL'}: largest difference {worst:.3g} (tolerance {tolerance:g})")
    return ok
