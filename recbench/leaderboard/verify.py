"""Re-run a result row's recorded command and report how far each metric moved.

CPU runs are deterministic (``trainer.deterministic: true``, seeded data order, seeded initialisation):
the same code, data and seed on a CPU reproduce every metric exactly, so the default tolerance is 0.
GPU kernels are not bit-reproducible; pass ``--tolerance`` for rows made on a GPU.

A row is data from strangers (a pull request to ``leaderboards/results/``), and its command becomes the
overrides of a run: :func:`safe_overrides` rebuilds them from the row and refuses, naming the token,
anything that could make the run execute code the checkout does not choose. See SECURITY.md.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig

from recbench.errors import RefusedError
from recbench.results.schema import ResultRow, read_row
from recbench.utils.environment import git_state

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# Where the run writes and how it logs change no number (they are outside the config hash): the re-run
# writes to its own folder and reads data from this machine's data root, never a path a row names.
WHERE = ("hydra.run.dir=", "hydra.sweep.", "paths.", "logger=", "logger.")
# A run resumed from its own checkpoints equals the unbroken one: shown and re-run without this argument.
RESUMED = "resume_from="
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_-]+")
_SPECIAL_KEY = re.compile(r"(^|\.)_[a-z]+_($|\.)")  # Hydra's _target_, _args_, _partial_, _convert_ …


@dataclass
class Difference:
    split: str
    metric: str
    recorded: float
    reproduced: float

    @property
    def delta(self) -> float:
        return self.reproduced - self.recorded


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-7)
        except (TypeError, ValueError):
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _has_special_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_SPECIAL_KEY.search(str(k)) or _has_special_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_special_keys(v) for v in value)
    return False


def _check(token: str, override: Override, row: ResultRow, conf_dir: Path) -> None:
    def refuse(why: str) -> RefusedError:
        return RefusedError(f"row command token {token!r}: {why}; verify re-runs only what the row says")

    key = override.key_or_group
    if override.type in (OverrideType.ADD, OverrideType.FORCE_ADD):
        raise refuse("adds a key ('+'/'++'): a re-run may only set keys the config already has")
    if override.package is not None:
        raise refuse("moves a config group to another package ('@')")
    if key == "hydra" or key.startswith(("hydra.", "hydra/")):
        raise refuse("changes Hydra itself (its callbacks, launcher and sweeper run code)")
    if _SPECIAL_KEY.search(key):
        raise refuse("sets a Hydra special key (_target_, _args_, _partial_ …), which chooses what is called")
    if override.is_sweep_override():
        raise refuse("is a sweep (a,b / choice / range / glob): a row is one run")
    value = None if override.type == OverrideType.DEL else override.value()
    if "${" in str(value):
        raise refuse("holds an interpolation (${…}): a re-run takes values, not references")
    if _has_special_keys(value):
        raise refuse("its value holds a Hydra special key (_target_ …), which chooses what is called")
    if (conf_dir / key).is_dir():  # a config group: its option must be a file of this checkout's conf/
        if override.type == OverrideType.DEL or not isinstance(value, str):
            raise refuse(f"config group {key!r} takes the name of one of its files")
        option = (conf_dir / key / f"{value}.yaml").resolve()
        if not option.is_relative_to(conf_dir.resolve()) or not option.is_file():
            options = sorted(p.stem for p in (conf_dir / key).glob("*.yaml"))
            raise refuse(f"{key}={value} names no file conf/{key}/{value}.yaml (options: {options})")
        return
    from recbench.results.builder import dotted_parent  # lazily: the builder imports Lightning

    parent, leaf = dotted_parent(row.config, key)
    present = parent is not None and leaf in parent
    recorded = parent[leaf] if present else None  # type: ignore[index]
    if override.type == OverrideType.DEL:
        if present:
            raise refuse(f"deletes {key}, which the row's config holds")
        return
    if not present:
        raise refuse(f"sets {key}, which the row's config does not have")
    if not _same(value, recorded):
        raise refuse(f"sets {key}={value!r}, but the row's config records {recorded!r}")


def safe_overrides(row: ResultRow, conf_dir: Path = CONF_DIR) -> list[str]:
    """The overrides that re-run ``row``: its command's, each checked against the row's own config, less
    where it wrote and logged. Raises :class:`RefusedError` naming the first token that adds a key, sets a
    ``_target_`` (or any Hydra special key), touches Hydra's own config, passes a command-line flag, sweeps,
    names a config group option absent from ``conf/``, or disagrees with the row's recorded config."""
    args = shlex.split(row.command)
    if args[:3] != ["python", "-m", "recbench.run"]:
        raise RefusedError(f"row command is not a recbench run: {row.command!r}")
    parser = OverridesParser.create()
    kept = []
    for token in args[3:]:
        if token.startswith("-"):  # --config-dir, --experimental-rerun, -cp … choose code or pickles
            raise RefusedError(f"row command token {token!r}: command-line flags are not accepted")
        if token.startswith((*WHERE, RESUMED)):
            continue
        try:
            override = parser.parse_override(token)
        except Exception as e:
            raise RefusedError(f"row command token {token!r} is not a valid override: {e}") from None
        _check(token, override, row, conf_dir)
        kept.append(token)
    if not any(t.startswith("seed=") for t in kept):
        raise RefusedError(f"row command {row.command!r} does not set its seed (seed={row.seed})")
    return kept


def check_composition(row: ResultRow, overrides: list[str], conf_dir: Path = CONF_DIR) -> DictConfig:
    """Compose the overrides with this checkout's ``conf/`` (composing runs no code), check every
    ``_target_`` it would call, and, for next-item rows, that it hashes as the row did. Returns the
    composed config."""
    from hydra import compose, initialize_config_dir

    from recbench.results.builder import config_hashes
    from recbench.utils.instantiate import check_targets

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    check_targets(cfg)
    if row.config.get("model", {}).get("task", "next_item") != "next_item":
        return cfg  # search runs reshape their config before hashing (recbench/search/run.py)
    config_hash = config_hashes(cfg)[0]
    if config_hash != row.config_hash:
        raise RefusedError(
            f"the row's command composes, with this checkout's conf/, a config whose hash is "
            f"{config_hash[:12]}, but the row records {row.config_hash[:12]}: this is not the setting that "
            "produced the row (check out the row's commit, or the row was edited)"
        )
    return cfg


def rounding_overrides(row: ResultRow, cfg: DictConfig) -> list[str]:
    """Overrides that pin, for each rounding-level key (``ROUNDING_ONLY`` in recbench/results/builder.py)
    that the row's composed config ``cfg`` has, the value the row ran with: its own where its config
    records the key, else the value of rows made before the key existed. Without them a re-run would take
    today's default."""
    from omegaconf import OmegaConf

    from recbench.results.builder import ROUNDING_ONLY, dotted_parent

    pinned = []
    for key, before in ROUNDING_ONLY.items():
        if OmegaConf.select(cfg, key) is None:
            continue  # this run's config has no such key (e.g. a datamodule without it)
        node, leaf = dotted_parent(row.config, key)
        value = node[leaf] if node is not None and leaf in node else before
        if value is None or isinstance(value, bool):
            value = {None: "null", True: "true", False: "false"}[value]
        elif not isinstance(value, str) or not _PLAIN_VALUE.fullmatch(value):
            raise RefusedError(f"row config {key}={value!r} is not a plain word, true, false or null")
        pinned.append(f"{key}={value}")
    return pinned


def rerun(row: ResultRow, workdir: Path) -> ResultRow:
    kept = safe_overrides(row)
    kept += rounding_overrides(row, check_composition(row, kept))
    cmd = [
        sys.executable,
        "-m",
        "recbench.run",
        *kept,
        f"hydra.run.dir={workdir}",
        f"paths.output_dir={workdir}",
        "logger=none",
    ]
    print("re-running: " + " ".join(shlex.quote(c) for c in ["python", *cmd[1:]]), flush=True)
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
    if new.config_hash != row.config_hash:  # search rows: their hash is checked only here, after the run
        print(f"warning: config hash differs ({row.config_hash[:12]} recorded, {new.config_hash[:12]} now)")
    diffs = compare(row, new)
    worst = max((abs(d.delta) for d in diffs), default=0.0)
    print(f"{'split':<24} {'metric':<12} {'recorded':>12} {'reproduced':>12} {'difference':>12}")
    for d in diffs:
        print(f"{d.split:<24} {d.metric:<12} {d.recorded:12.8f} {d.reproduced:12.8f} {d.delta:+12.2e}")
    ok = worst <= tolerance
    print(f"{'PASS' if ok else 'FAIL'}: largest difference {worst:.3g} (tolerance {tolerance:g})")
    return ok
