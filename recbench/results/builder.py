"""Assemble a :class:`ResultRow` from a finished run, and write its per-user predictions."""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow as pa
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from recbench.data.dataset import SequenceDataset, sha256_file, text_coverage
from recbench.data.protocol import Split
from recbench.data.sampled import split_name
from recbench.results.schema import COLD_MAX_COUNT, COLD_SPLIT, ResultRow
from recbench.utils.callbacks import EpochTimer
from recbench.utils.environment import hardware, package_versions, peak_memory_mb
from recbench.utils.files import atomic_write_parquet

# Config keys that say where things are, how they are logged or what is saved, not what is computed
# (a dotted key names a nested one).
NOT_HASHED = (
    "paths",
    "logger",
    "save_predictions",
    "resume_from",
    "torch_threads",
    "callbacks.last_checkpoint",  # 2026-11-23 (session 5)
    "callbacks.training_estimate",  # a log line and a warning, 2026-12-02 (session 8)
    "callbacks.model_summary",  # a log line, 2026-12-03 (session 12)
    # the text-encoder choice (conf/encoder/, 2026-12-02, session 10): what it changes is hashed where it
    # lands, as the encoder name of each text component (model.net.encoder, tokenizer.encoder, ...)
    "encoder",
    # where a dataset is fetched from when its files are absent, and the content it must then hold (the
    # rows already record the data's fingerprint), 2026-12-03 (session 12)
    "data.fallback",
    "data.fingerprint",
)
# Key names left out wherever they occur: whether downloads without a pinned checksum were accepted (the
# top-level switch and its copy in each download of a source; the data's own sha256 is in the row).
NOT_HASHED_ANYWHERE = ("allow_unverified",)

# Keys added after rows were published, each with the value that reproduces the behaviour from before the
# key existed. Holding that value, a key is left out of the hashes, so a row made before it existed and
# one made after with the same setting share their setting hash (and their leaderboard group). Any other
# value is hashed like every other key. Add an entry whenever a new option keeps the old behaviour as one
# of its values; never remove one.
NEUTRAL_WHEN: dict[str, object] = {
    "model.net.positions": "from_end",  # SASRec, 2026-11-22
    "model.net.norm": "pre",  # SASRec, 2026-11-22
    "datamodule.bucket_pool": 50,  # 2026-11-22 (session 3)
    "model.module.micro_batch": 256,  # SASRec, 2026-11-22 (session 3)
    "model.net.similarity": "dot",  # SASRec, 2026-11-22 (session 4)
    "model.net.temperature": 1.0,  # SASRec, 2026-11-22 (session 4)
    "model.module.fold_in_test": "train+valid",  # CF fold-in models, 2026-12-02 (session 7)
}

# Keys added after rows were published whose values move results by float rounding only (not which cases
# are scored, nor how), each with the value that reproduces rows made before the key existed. They are
# left out of the hashes whatever they hold, so a setting keeps its hash and its group; ``verify`` re-runs
# a row whose config lacks such a key with that value, and so still reproduces the row bit for bit.
ROUNDING_ONLY: dict[str, object] = {
    "datamodule.eval_order": "given",  # the order evaluation cases are batched in, 2026-12-02 (session 9)
    "compile": None,  # torch.compile of each network's forward, 2026-12-02 (session 11)
    "model.optimizer.fused": None,  # Adam/AdamW in one fused kernel, 2026-12-02 (session 11)
    "loss.fused": None,  # full-softmax CE in one exponential pass, 2026-12-03 (session 12)
    "model.net.images": True,  # Caser's filters shared between overlapping windows, 2026-12-03 (s15)
    "model.net.packed": True,  # GRU4Rec on the rotated batch rather than packed sequences, 2026-12-03 (s15)
}

# Keys that change no number but were hashed while rows were published, each with the value those rows
# hashed: whatever a key holds, it is hashed as that value, so old and new rows of one setting still share
# their hashes. Never remove an entry.
HASHED_AS: dict[str, object] = {
    # last.ckpt moved to callbacks.last_checkpoint (written every epoch), 2026-11-23 (session 5)
    "callbacks.model_checkpoint.save_last": True,
    # the same checkpoints, named from epoch 1, 2026-12-02 (session 8)
    "callbacks.model_checkpoint._target_": "lightning.pytorch.callbacks.ModelCheckpoint",
}


def dotted_parent(resolved: dict[Any, Any], dotted: str) -> tuple[dict[Any, Any] | None, str]:
    """The dict holding a dotted key, and the key's last part (None where a parent is missing)."""
    *parents, leaf = dotted.split(".")
    node: Any = resolved
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), leaf


def _drop_everywhere(node: Any, names: tuple[str, ...]) -> None:
    if isinstance(node, dict):
        for name in names:
            node.pop(name, None)
        for value in node.values():
            _drop_everywhere(value, names)
    elif isinstance(node, list):
        for value in node:
            _drop_everywhere(value, names)


def _as_retired_flags(model: Any) -> None:
    """``model.inputs`` (2026-12-01) replaced two flags that told run.py what to pass; it is hashed as the
    flags were (``uses_item_text``: the net takes item text; ``generative``: the recipe takes item codes),
    so rows made before keep their hashes. Which inputs a model takes follows from its code."""
    if not isinstance(model, dict) or not isinstance(inputs := model.pop("inputs", None), dict):
        return
    if "item_text" in (inputs.get("net") or []):
        model["uses_item_text"] = True
    if "item_codes" in (inputs.get("module") or []):
        model["generative"] = True


def _normalise(resolved: dict[Any, Any]) -> dict[str, Any]:
    """The resolved config as it is hashed: NOT_HASHED and ROUNDING_ONLY keys dropped, NEUTRAL_WHEN keys
    dropped when neutral, HASHED_AS keys pinned."""
    for dotted in (*NOT_HASHED, *ROUNDING_ONLY):
        node, leaf = dotted_parent(resolved, dotted)
        if node is not None:
            node.pop(leaf, None)
    _drop_everywhere(resolved, NOT_HASHED_ANYWHERE)
    _as_retired_flags(resolved.get("model"))
    for dotted, neutral in NEUTRAL_WHEN.items():
        node, leaf = dotted_parent(resolved, dotted)
        if node is not None and leaf in node and node[leaf] == neutral:
            del node[leaf]
    for dotted, value in HASHED_AS.items():
        node, leaf = dotted_parent(resolved, dotted)
        if node is not None and leaf in node:
            node[leaf] = value
    return {str(k): v for k, v in resolved.items()}


def config_hashes(cfg: DictConfig) -> tuple[str, str]:
    """(config hash, setting hash): sha256 of the resolved config with every ``paths.*`` value replaced
    by a placeholder (so the hash does not depend on the machine or the run folder), the keys in
    :data:`NOT_HASHED` and :data:`ROUNDING_ONLY` left out, and so are those of :data:`NEUTRAL_WHEN`
    holding their neutral value, and those of :data:`HASHED_AS` hashed as the value published rows
    hashed. The setting hash also replaces the seed (everywhere it is interpolated) by a placeholder:
    rows sharing it are repeats of one configuration."""

    def digest(seed: object) -> str:
        c = copy.deepcopy(cfg)
        with open_dict(c):
            for key in c.paths:
                c.paths[key] = f"<{key}>"
            c.seed = seed
        resolved = OmegaConf.to_container(c, resolve=True)
        assert isinstance(resolved, dict)
        kept = _normalise(resolved)
        return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()

    return digest(cfg.seed), digest("<seed>")


def reproduce_command(cfg: DictConfig, overrides: list[str] | None) -> str:
    """The command line that reproduces this run: its overrides, seed included."""
    args = list(overrides or [])
    if not any(o.startswith("seed=") for o in args):
        args.append(f"seed={cfg.seed}")
    return " ".join(["python -m recbench.run", *args])


def cold_slice(module: Any, dataset: SequenceDataset, split: Split) -> dict[str, dict[str, float]]:
    """Test metrics over the cases whose target is a cold item (seen at most :data:`COLD_MAX_COUNT` times
    among the training interactions), for the headline history setting (``test_cold5``) and the other one
    beside it, each with its number of cases. A diagnostic beside the headline, computed from the same
    ranks; empty where no case is cold or the recipe kept no per-case ranks."""
    from recbench.inputs import RunContext, train_item_counts
    from recbench.metrics.ranking import compute

    p = getattr(module, "predictions", None) or {}
    if "targets" not in p or "plain" not in p:
        return {}
    cold = train_item_counts(RunContext(dataset, split, None))[p["targets"]] <= COLD_MAX_COUNT
    if not cold.any():
        return {}
    name = COLD_SPLIT
    head, alt = ("masked", "plain") if module.mask_history else ("plain", "masked")
    other = f"{name}_history_{'unmasked' if module.mask_history else 'masked'}"
    cases = float(cold.sum())
    return {
        name: {**compute(module.metrics, p[head][cold]), "cases": cases},
        other: {**compute(module.metrics, p[alt][cold]), "cases": cases},
    }


def write_predictions(module: Any, dataset: SequenceDataset, path: Path) -> dict[str, Any]:
    """Top-K items and scores per test user, the target and its rank both ways, as parquet."""
    p = module.predictions
    users = p["users"]
    table = pa.table(
        {
            "user": users.astype(np.int32),
            "user_id": dataset.user_ids[users].astype(str),
            "target": p["targets"].astype(np.int32),
            "target_item_id": dataset.item_ids[p["targets"]].astype(str),
            "rank": p["plain"].astype(np.int64),
            "rank_history_masked": p["masked"].astype(np.int64),
            "top_items": list(p["top_items"].astype(np.int32)),
            "top_scores": list(p["top_scores"].astype(np.float32)),
        }
    )
    table = table.replace_schema_metadata({"ranks": "1-based, ties counted against the target"})
    atomic_write_parquet(table, path)
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "k": int(p["top_items"].shape[1]),
        "cases": len(users),
    }


def wandb_info(trainer: L.Trainer) -> dict[str, Any] | None:
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            run = getattr(logger, "experiment")  # noqa: B009  (typed Logger has no .experiment)
            offline = bool(getattr(run.settings, "_offline", False)) or run.settings.mode == "offline"
            return {
                "mode": "offline" if offline else "online",
                "run_path": None if offline else run.path,
                "url": None if offline else getattr(run, "url", None),
                "dir": str(Path(run.dir).parent),
            }
    return None


def build_row(
    *,
    cfg: DictConfig,
    dataset: SequenceDataset,
    split: Split,
    protocol: Any,
    tokenizer: Any,
    module: Any,  # NextItemModule or GenerativeModule: results, predictions, eval_seconds, metrics
    trainer: L.Trainer,
    timer: EpochTimer,
    predictions: dict[str, Any] | None,
    git: dict[str, Any],
    overrides: list[str] | None,
    index: dict[str, Any] | None = None,
    sampled: dict[str, Any] | None = None,
) -> ResultRow:
    """``sampled``: how the datamodule drew the test cases' sampled negatives
    (``SequentialDataModule.describe_sampled``); recorded when the recipe ranked them (not generative)."""
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(resolved, dict)
    chash, shash = config_hashes(cfg)
    best = timer.best_epoch()
    train_passes = timer.train_seconds or [0.0]
    fit = getattr(getattr(module, "net", None), "fit_seconds", None)  # closed form: fitted, no epochs
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    metric_keys = [m.key for m in module.metrics]
    return ResultRow.model_validate(
        dict(
            run_id=uuid.uuid4().hex[:12],
            created_at=datetime.now(UTC),
            benchmark=dict(cfg.benchmark),
            protocol={
                **protocol.describe(),
                "max_history": int(getattr(module.net, "max_history", cfg.datamodule.max_len)),
                "dropped_users": split.dropped_users,
                "test_history": getattr(module, "test_history", "train+valid"),
            },
            dataset={
                "name": dataset.name,
                "fingerprint": dataset.fingerprint(),
                "preprocessing_version": str(dataset.meta.get("preprocessing_version", "?")),
                "cache_key": dataset.meta.get("cache_key"),
                "source_sha256": dataset.meta.get("source_sha256", {}),
                "source": dataset.meta.get("source"),
                "users": dataset.num_users,
                "items": dataset.num_items,
                "interactions": dataset.num_interactions,
                "eval_users": len(split.test),
                "item_text_coverage": text_coverage(dataset.item_text),
            },
            model={
                "name": cfg.model.name,
                "label": cfg.label,
                "n_params": sum(p.numel() for p in module.parameters()),
                "loss": type(module.loss).__name__,
                "tokenizer": tokenizer.name,
            },
            seed=cfg.seed,
            experiment=cfg.get("experiment_name"),
            metrics={**module.results, **cold_slice(module, dataset, split)},
            higher_is_better={k: True for k in metric_keys},
            cost={
                "epochs_trained": len(timer.elapsed_at_epoch_end),
                "best_epoch": best,
                "train_seconds": timer.elapsed_at_epoch_end[-1] if timer.elapsed_at_epoch_end else fit or 0.0,
                "train_seconds_to_best": timer.elapsed_at_epoch_end[best - 1] if best else fit or 0.0,
                "seconds_per_epoch": float(np.mean(train_passes)),
                "val_seconds_per_epoch": float(np.mean(timer.val_seconds)) if timer.val_seconds else 0.0,
                "test_seconds": module.eval_seconds.get("test", 0.0),
                "peak_memory_mb": peak_memory_mb(),
                "peak_gpu_memory_mb": gpu_peak,
                "fit_seconds": fit,
            },
            hardware={
                **hardware(),
                "accelerator": type(trainer.accelerator).__name__.replace("Accelerator", "").lower(),
                "devices": trainer.world_size,
                "precision": str(trainer.precision),
            },
            packages=package_versions(),
            git=git,
            config_hash=chash,
            setting_hash=shash,
            config=resolved,
            command=reproduce_command(cfg, overrides),
            wandb=wandb_info(trainer),
            predictions=predictions,
            index=index,
            item_tokenizer=tokenizer.describe() if hasattr(tokenizer, "describe") else None,
            sampled_metrics=sampled_info(sampled, module),
        )
    )


def sampled_info(sampled: dict[str, Any] | None, module: Any) -> dict[str, Any] | None:
    """The row's ``sampled_metrics``: how the negatives were drawn, and which splits hold the numbers."""
    short = getattr(module, "sampled_short", {})
    if sampled is None or not short:
        return None
    splits = {v: split_name(v, sampled["negatives"]) for v in sampled["variants"]}
    return {
        **sampled,
        "target_score": "unmasked (the negatives are never history items)",
        "splits": {v: s for v, s in splits.items() if s in short},
        "short_cases": dict(short),
    }


def print_summary(row: ResultRow, path: Path) -> None:
    shown = ["val", "test", "test_history_masked", "test_history_unmasked", "test_tuple_level"]
    shown += list(row.sampled_metrics.splits.values()) if row.sampled_metrics else []
    splits = [s for s in shown if s in row.metrics]
    keys = list(row.metrics["test"])
    width = max(len(s) for s in splits)
    lines = [f"\n{row.model.label} on {row.dataset.name} (seed {row.seed}, best epoch {row.cost.best_epoch})"]
    lines.append(" " * width + " | " + " | ".join(f"{k:>9}" for k in keys))
    for s in splits:
        lines.append(f"{s:<{width}} | " + " | ".join(f"{row.metrics[s][k]:9.4f}" for k in keys))
    c = row.cost
    lines.append(
        f"train {c.train_seconds:.0f} s ({c.seconds_per_epoch:.1f} s/epoch, "
        f"best after {c.train_seconds_to_best:.0f} s)"
        f" · test eval {c.test_seconds:.1f} s · peak memory {c.peak_memory_mb:.0f} MB"
    )
    lines.append(f"row: {path}")
    print("\n".join(lines), file=sys.stdout, flush=True)
