"""Hydra callbacks. ``ExportBestTrial`` turns the best trial of an Optuna sweep into an experiment file."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from recbench.utils.files import atomic_write_text

log = logging.getLogger(__name__)
EXPERIMENT_DIR = Path(__file__).resolve().parents[2] / "conf" / "experiment"


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"model.net.dropout": 0.2} -> {"model": {"net": {"dropout": 0.2}}}"""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def experiment_text(name: str, results: dict[str, Any], sweep_dir: Path, base_overrides: list[str]) -> str:
    best = results["best_params"]
    header = [
        "# @package _global_",
        f"# Best trial of the Optuna study {name.removesuffix('_best')!r}, exported {dt.date.today()}.",
        f"# Objective (validation only): {results.get('best_value')} "
        f"({results.get('direction', 'maximize')}).",
        f"# Sweep folder: {sweep_dir}",
        f"# Sweep overrides: {' '.join(base_overrides) or '(none)'}",
        f"# Run it: python -m recbench.run experiment={name} seed=0,1,2 -m",
        "# Frozen once committed: a change means a new file.",
    ]
    conf_dir = EXPERIMENT_DIR.parent
    groups = [o.split("=", 1) for o in base_overrides if "=" in o and "." not in o.split("=", 1)[0]]
    defaults = [{f"override /{g}": v} for g, v in groups if (conf_dir / g).is_dir()]
    values = {
        o.split("=", 1)[0]: yaml.safe_load(o.split("=", 1)[1])
        for o in base_overrides
        if "=" in o and "." in o.split("=", 1)[0] and not o.startswith("hydra.")
    }
    body: dict[str, Any] = {"defaults": defaults} if defaults else {}
    body |= {"experiment_name": name, "label": name}
    body |= merge(nest(values), nest(best))  # the tuned values win over the sweep's fixed ones
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False)


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class ExportBestTrial(Callback):
    """Creates the folder of the study's sqlite file before the sweeper opens it (sqlite cannot), and
    exports the best trial as an experiment file when the sweep ends."""

    def __init__(self, name: str, directory: str | None = None) -> None:
        self.name = name
        self.directory = Path(directory) if directory else EXPERIMENT_DIR

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        storage = str(config.hydra.sweeper.get("storage") or "")
        if storage.startswith("sqlite:///") and storage != "sqlite:///:memory:":
            Path(storage.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results_file = sweep_dir / "optimization_results.yaml"
        if not results_file.is_file():
            log.warning("no %s: nothing to export", results_file)
            return
        results = yaml.safe_load(results_file.read_text())
        overrides = [o for o in config.hydra.overrides.task if not o.startswith("hparams_search=")]
        path = self.directory / f"{self.name}.yaml"
        atomic_write_text(path, experiment_text(self.name, results, sweep_dir, overrides))
        log.info(
            "best trial %s (objective %s) saved as %s",
            results["best_params"],
            results.get("best_value"),
            path,
        )
        print(f"best trial: {results['best_params']} -> {path}", flush=True)


def sweep_summary(sweep_dir: Path, metrics: tuple[str, ...] = ("recall@10", "ndcg@10")) -> str:
    """A markdown table of a sweep's finished jobs: one line per dataset and setting (the overrides that
    differ between settings; seeds pooled), validation and test means ± sample std over seeds, per
    dataset the best setting on validation first. Failed and unfinished jobs are counted under the table."""
    import statistics

    from recbench.results.failure import FAILED_FILE
    from recbench.results.schema import read_row

    rows = [read_row(p) for p in sorted(sweep_dir.rglob("result.json"))]
    failed = sorted(p.parent.name for p in sweep_dir.rglob(FAILED_FILE))
    if not rows:
        return f"{sweep_dir}: no finished job" + (f"; failed: {', '.join(failed)}" if failed else "")
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        groups.setdefault((r.dataset.name, r.setting_hash), []).append(r)
    words = {k: set(g[0].command.split()[3:]) - {f"seed={g[0].seed}"} for k, g in groups.items()}
    words = {k: {w for w in ws if not w.startswith("data=")} for k, ws in words.items()}
    common = set.intersection(*words.values())

    def cell(values: list[float]) -> str:
        mean = statistics.fmean(values)
        return f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"

    monitor = rows[0].config.get("monitor", "val/ndcg@10").removeprefix("val/")

    def order(k: tuple[str, str]) -> tuple[str, float]:
        return k[0], -statistics.fmean(r.metrics["val"][monitor] for r in groups[k])

    head = ["data", "setting", "seeds", f"val {monitor}", *(f"test {m}" for m in metrics), "best epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in sorted(groups, key=order):
        g = groups[k]
        setting = " ".join(sorted(words[k] - common)) or g[0].model.label
        vals = [cell([r.metrics["val"][monitor] for r in g])]
        tests = [cell([r.metrics["test"][m] for r in g]) for m in metrics]
        epochs = ", ".join(str(r.cost.best_epoch) for r in g)
        lines.append(f"| {k[0]} | {setting} | {len(g)} | " + " | ".join([*vals, *tests, epochs]) + " |")
    notes = [f"{len(rows)} finished job(s) in {sweep_dir}; per dataset, settings by validation {monitor}."]
    if len(groups) > len({k[0] for k in groups}):  # several settings on one dataset: a search
        add = "python -m recbench.leaderboard add --select-on-validation"
        notes.append(f"Add the best one: {add} {sweep_dir}")
    if failed:
        notes.append(f"Failed (FAILED.json beside each log): {', '.join(failed)}")
    return "\n".join([*lines, "", *notes]) + "\n"


class SweepSummary(Callback):
    """After ``-m``: print the sweep's table (:func:`sweep_summary`) and write it to ``summary.md`` in the
    sweep folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        try:
            text = sweep_summary(sweep_dir)
        except Exception as e:  # a summary must never turn a finished sweep into a failure
            log.warning("no sweep summary: %s", e)
            return
        atomic_write_text(sweep_dir / "summary.md", text)
        print(text, flush=True)
