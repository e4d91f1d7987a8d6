"""Zero-shot product search: one ranker, one search protocol, one result row.

    python -m recbench.run data=esci_us_150 model=bm25 protocol=esci_rerank

Reads top to bottom: data -> protocol -> ranker -> fit the corpus (encode + index; no training) ->
rank every query -> metrics -> predictions + row.

Why no LightningModule: nothing is trained, the rankers are numpy/faiss/bm25s objects rather than
``nn.Module`` s, and a Trainer's loops, checkpoints and loggers would only wrap a single call to the
protocol. The row is written through the same schema, hashes and writer as every other run.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from recbench.data.dataset import sha256_file, text_coverage
from recbench.data.esci import SearchDataset
from recbench.results.builder import config_hashes, reproduce_command
from recbench.results.schema import ResultRow, write_row
from recbench.search.protocol import Rerank, Retrieve, SearchEvaluation
from recbench.utils.environment import git_state, hardware, package_versions, peak_memory_mb
from recbench.utils.files import atomic_write_parquet
from recbench.utils.instantiate import instantiate

log = logging.getLogger(__name__)

NEXT_ITEM_ONLY = ("tokenizer", "loss", "metrics", "datamodule", "trainer", "callbacks", "logger", "monitor")

# Said in every row of a dataset whose name is a key here.
DATASET_NOTES = {
    "esci_us_150": (
        "non-random subset of ESCI US (150 queries with >= 40 judgements each; ~1% of each official "
        "list missing); scores are comparable only with other runs on this same set, not with "
        "published ESCI numbers. Retrieval corpus = the 6,764 products of this set (closed, easy)."
    ),
}


def run_search(cfg: DictConfig, overrides: list[str] | None = None) -> ResultRow:
    code_version = git_state()  # the code that runs is the code at start
    out_dir = Path(cfg.paths.output_dir)

    # 1. Data and protocol: both must be search ones.
    dataset = instantiate(cfg.data)
    if not isinstance(dataset, SearchDataset):
        raise TypeError(
            f"model={cfg.model.name} is a search model (model.task=search), but data={cfg.data.name} "
            "is not a search dataset: choose e.g. data=esci_us_150"
        )
    protocol = instantiate(cfg.protocol)
    if not isinstance(protocol, Rerank | Retrieve):
        raise TypeError(
            f"model={cfg.model.name} is a search model: choose protocol=esci_rerank or "
            f"protocol=esci_retrieve (got {cfg.protocol.get('_target_')})"
        )
    # The benchmark is named by the protocol (the seqrec default in conf/config.yaml does not apply), and
    # the groups only next-item training reads are dropped, so the row's config and hashes hold only
    # what search numbers depend on.
    with open_dict(cfg):
        cfg.benchmark = {"name": protocol.name, "version": str(protocol.version)}
        for key in NEXT_ITEM_ONLY:
            cfg.pop(key, None)
    log.info("%s: %s", dataset.name, dataset.stats())

    # 2. The ranker indexes the corpus (encoding + faiss index, or the BM25 index).
    ranker = instantiate(cfg.model.ranker)
    started = time.perf_counter()
    ranker.fit(dataset.product_text)
    fit_seconds = time.perf_counter() - started
    log.info("corpus of %d products indexed in %.1f s", dataset.num_products, fit_seconds)

    # 3. Rank every query and score the rankings.
    evaluation = protocol.evaluate(dataset, ranker)

    # 4. Predictions and the row, both written atomically.
    predictions = (
        write_search_predictions(
            dataset, evaluation, out_dir / "predictions.parquet", k=cfg.model.get("predictions_k", 100)
        )
        if cfg.save_predictions
        else None
    )
    row = build_search_row(
        cfg, dataset, protocol, ranker, evaluation, fit_seconds, predictions, code_version, overrides
    )
    write_row(row, out_dir / "result.json")
    print_search_summary(row, out_dir / "result.json")
    return row


def write_search_predictions(
    ds: SearchDataset, ev: SearchEvaluation, path: Path, k: int = 100
) -> dict[str, Any]:
    """Per query: the top-``k`` product ids with scores and labels ("" = unjudged), as parquet."""
    labels = [ds.judged(q) for q in range(ds.num_queries)]
    table = pa.table(
        {
            "query_id": ds.query_ids.astype(str),
            "query": ds.queries.astype(str),
            "product_ids": [ds.product_ids[r[:k]].astype(str).tolist() for r in ev.ranked],
            "scores": [s[:k].astype("float32").tolist() for s in ev.scores],
            "labels": [
                [lab.get(int(d), "") for d in r[:k]] for r, lab in zip(ev.ranked, labels, strict=True)
            ],
        }
    )
    atomic_write_parquet(table, path)
    return {"file": path.name, "sha256": sha256_file(path), "k": k, "cases": ds.num_queries}


def index_info(described: dict[str, Any]) -> dict[str, Any] | None:
    """The faiss index of a dense (or hybrid) ranker, in the row's :class:`IndexInfo` form."""
    dense = described.get("dense", described)
    if "index" not in dense:
        return None
    params = {k: v for k, v in dense["index"].items() if k not in ("kind", "metric")}
    kind = dense["index"]["kind"]
    return {
        "kind": kind,
        "params": params,
        "exact": kind == "flat",
        "recall_vs_exact": dense.get("index_recall"),
    }


def build_search_row(
    cfg: DictConfig,
    dataset: SearchDataset,
    protocol: Rerank | Retrieve,
    ranker: Any,
    ev: SearchEvaluation,
    fit_seconds: float,
    predictions: dict[str, Any] | None,
    git: dict[str, Any],
    overrides: list[str] | None,
) -> ResultRow:
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(resolved, dict)
    chash, shash = config_hashes(cfg)
    described = ranker.describe()
    is_retrieve = isinstance(protocol, Retrieve)
    encoder_params = described.get("n_params", None)
    return ResultRow.model_validate(
        dict(
            run_id=uuid.uuid4().hex[:12],
            created_at=datetime.now(UTC),
            benchmark=dict(cfg.benchmark),
            protocol=protocol.describe(),
            dataset={
                # search data in the dataset's terms: users = queries, items = corpus products,
                # interactions = judgements, eval_users = evaluated queries
                "name": dataset.name,
                "fingerprint": dataset.fingerprint(),
                "preprocessing_version": str(dataset.meta.get("preprocessing_version", "?")),
                "source_sha256": dataset.meta.get("source_sha256", {}),
                "users": dataset.num_queries,
                "items": dataset.num_products,
                "interactions": dataset.num_judgements,
                "eval_users": dataset.num_queries,
                "item_text_coverage": text_coverage(dataset.product_text),
            },
            model={
                "name": cfg.model.name,
                "label": cfg.label,
                "n_params": int(encoder_params) if encoder_params is not None else _encoder_params(ranker),
                "loss": "none (zero-shot)",
                "tokenizer": str(described.get("encoder") or described.get("ranker")),
            },
            seed=cfg.seed,
            experiment=cfg.get("experiment_name"),
            metrics={"test": ev.metrics},
            higher_is_better={k: True for k in ev.metrics},
            cost={
                "epochs_trained": 0,  # zero-shot: nothing is trained
                "best_epoch": 0,
                "train_seconds": fit_seconds,  # indexing the corpus: encoding + index build
                "train_seconds_to_best": fit_seconds,
                "seconds_per_epoch": 0.0,
                "val_seconds_per_epoch": 0.0,
                "test_seconds": ev.seconds,
                "peak_memory_mb": peak_memory_mb(),
                "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20
                if torch.cuda.is_available()
                else None,
            },
            hardware={**hardware(), "accelerator": "cpu", "devices": 1, "precision": "32-true"},
            packages=package_versions(),
            git=git,
            config_hash=chash,
            setting_hash=shash,
            config=resolved,
            command=reproduce_command(cfg, overrides),
            predictions=predictions,
            index=index_info(described) if is_retrieve else None,
            search={
                "task": "retrieve" if is_retrieve else "rerank",
                "queries": dataset.num_queries,
                "judgements": dataset.num_judgements,
                "corpus_size": dataset.num_products if is_retrieve else dataset.num_judgements,
                "gains": dict(protocol.gains),
                "relevant_labels": list(protocol.relevant_labels),
                "depth": protocol.depth if isinstance(protocol, Retrieve) else None,
                "query_seconds": ev.seconds,
                "queries_per_second": dataset.num_queries / ev.seconds if ev.seconds > 0 else 0.0,
                "ranker": described,
                "note": DATASET_NOTES.get(dataset.name),
            },
        )
    )


def _encoder_params(ranker: Any) -> int:
    """Parameters of the sentence encoder(s) a ranker uses (0 for BM25): frozen, but they are the model."""
    from recbench.embeddings.text import load_encoder

    dense = getattr(ranker, "dense", ranker)
    name = getattr(dense, "encoder", None)
    if name is None:
        return 0
    return load_encoder(name).n_params


def print_search_summary(row: ResultRow, path: Path) -> None:
    m = row.metrics["test"]
    s = row.search
    assert s is not None
    lines = [
        f"\n{row.model.label} on {row.dataset.name} ({row.benchmark.name} v{row.benchmark.version}, "
        f"{s.queries} queries, corpus {s.corpus_size:,})",
        " | ".join(f"{k} {v:.4f}" for k, v in m.items()),
        f"index {row.cost.train_seconds:.1f} s · ranking {s.query_seconds:.2f} s "
        f"({s.queries_per_second:.0f} queries/s)"
        + (
            f" · index recall vs exact {row.index.recall_vs_exact}"
            if row.index and row.index.recall_vs_exact
            else ""
        ),
        f"row: {path}",
    ]
    print("\n".join(lines), file=sys.stdout, flush=True)
