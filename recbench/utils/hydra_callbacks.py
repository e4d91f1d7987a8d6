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
