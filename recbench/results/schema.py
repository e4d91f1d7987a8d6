"""The result row: one validated JSON document per run, the only source of every leaderboard number.

Versioned: bump ``SCHEMA_VERSION`` on any change of meaning, and keep readers for old versions rather
than rewriting committed rows. Floats are kept at full precision in memory and rounded only on write
(:func:`write_row`), to ``FLOAT_DIGITS`` significant digits.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recbench.utils.files import atomic_write_text

SCHEMA_VERSION = "1"
FLOAT_DIGITS = 8
# The cold-item slice of next-item rows: test targets seen at most this often among the training
# interactions, in split COLD_SPLIT (headline history setting) and COLD_SPLIT + "_history_(un)masked".
COLD_MAX_COUNT = 5
COLD_SPLIT = f"test_cold{COLD_MAX_COUNT}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Benchmark(Strict):
    name: str  # e.g. "seqrec-loo-full"
    version: str


class Protocol(Strict):
    name: str
    version: str
    mask_history: bool
    max_history: int  # items of history the model reads; 0: the whole history before the target
    # "judged_list": search reranking of each query's judged products (ESCI task 1)
    ranking: Literal["full", "sampled", "judged_list"] = "full"
    ties: str = "pessimistic: the target ranks after every item with an equal score"
    dropped_users: int = 0
    # the history a test case is scored from: "train+valid" (everything before the target, the validation
    # item included: sequential and fold-in models) or "train_only" (a per-user embedding fitted without
    # the validation item: BPR-MF, LightGCN...). None in rows written before it was recorded: all of those
    # are train+valid models.
    test_history: Literal["train_only", "train+valid"] | None = None
    params: dict[str, Any] = Field(default_factory=dict)  # protocol-specific (global_temporal: cut points)


class DatasetInfo(Strict):
    name: str
    fingerprint: str
    preprocessing_version: str
    cache_key: str | None = None
    source_sha256: dict[str, str] = Field(default_factory=dict)
    # the form read, ``Class: file, ...`` (a local copy or a downloaded one; None in rows written before)
    source: str | None = None
    users: int
    items: int
    interactions: int
    eval_users: int
    # fraction of items with non-empty text; None without an item-text file (and in rows written before)
    item_text_coverage: float | None = None


class ModelInfo(Strict):
    name: str
    label: str  # what the leaderboard row is called (model + the choices that matter)
    n_params: int
    loss: str
    tokenizer: str


class Cost(Strict):
    epochs_trained: int
    best_epoch: int  # 1-based epoch whose checkpoint produced the test metrics (chosen on validation)
    train_seconds: float  # wall time of all training epochs including per-epoch validation
    train_seconds_to_best: float
    seconds_per_epoch: float  # mean wall time of one training pass (validation excluded)
    val_seconds_per_epoch: float
    test_seconds: float  # the full test evaluation (ranking every item for every test user)
    peak_memory_mb: float  # peak resident memory of the process (and peak GPU memory if used)
    peak_gpu_memory_mb: float | None = None
    fit_seconds: float | None = None  # closed-form models (EASE, ItemKNN): the fit, done with no epochs


class Hardware(Strict):
    cpu: str
    cpu_count: int
    torch_threads: int
    accelerator: str
    devices: int
    precision: str
    gpu: str | None = None


class Git(Strict):
    sha: str | None
    dirty: bool | None


class WandbInfo(Strict):
    mode: str
    run_path: str | None = None
    url: str | None = None  # the run's page when it was logged online (optional: older rows have none)
    dir: str | None = None


class PredictionsInfo(Strict):
    file: str
    sha256: str
    k: int
    cases: int


class IndexInfo(Strict):
    """The vector index items were ranked through (faiss), and, for an approximate one, its recall
    against exact search on the same queries."""

    kind: str  # "flat" (exact), "hnsw", "ivfpq"
    params: dict[str, Any] = Field(default_factory=dict)
    exact: bool
    recall_vs_exact: dict[str, float] | None = None  # e.g. {"recall@10": 0.98}; None when exact


class SearchInfo(Strict):
    """What a search row's numbers depend on beyond the protocol: the gain map, what counts as relevant,
    the corpus, and the query set."""

    task: Literal["rerank", "retrieve"]
    queries: int
    judgements: int
    corpus_size: int  # products that could be ranked (retrieve: all of them; rerank: the judged lists)
    gains: dict[str, float]  # label -> gain used by nDCG, e.g. {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
    relevant_labels: list[str]  # labels counted as relevant by MRR and recall
    depth: int | None = None  # products retrieved per query (retrieve)
    query_seconds: float  # ranking every query (query encoding included)
    queries_per_second: float
    ranker: dict[str, Any] = Field(default_factory=dict)  # ranker settings (template, encoder, PCA, ...)
    note: str | None = None  # e.g. "non-random subset: comparable only within this query set"


class Candidate(Strict):
    command: str  # the candidate's run (its seed's)
    setting_hash: str
    val: float  # its validation value of the selection's monitor (mean over its seeds)
    seeds: int


class Selection(Strict):
    """How a hyper-parameter setting was chosen: the sweep it came from, every setting tried, each one's
    validation score. Written by ``leaderboard add --select-on-validation``; test metrics play no part."""

    monitor: str  # e.g. val/ndcg@10
    sweep: str  # the sweep folder's name
    candidates: list[Candidate]  # every setting tried, best first


class SampledInfo(Strict):
    """How the sampled-metrics diagnostic of a next-item row was drawn (recbench/data/sampled.py): each test
    case also ranked against ``negatives`` sampled items per variant (Krichene & Rendle, KDD 2020), stored
    as the metrics splits named in ``splits``. A diagnostic: never a headline number."""

    negatives: int  # per test case and variant
    variants: dict[str, str]  # variant -> how its negatives are weighted
    excluded: str  # which items are never drawn
    replacement: bool
    seed: int
    generator: str
    target_score: str  # which score of the target is compared with the negatives'
    splits: dict[str, str]  # variant -> metrics split, e.g. {"uniform": "test_sampled_uniform100"}
    short_cases: dict[str, int]  # split -> test cases that had fewer eligible items than ``negatives``


class ResultRow(Strict):
    schema_version: Literal["1"] = "1"  # = SCHEMA_VERSION
    run_id: str
    created_at: datetime
    benchmark: Benchmark
    protocol: Protocol
    dataset: DatasetInfo
    model: ModelInfo
    seed: int
    experiment: str | None = None
    # split -> metric -> value; "test" and "val" are required. Headline: "test"; diagnostics beside it:
    # "test_history_(un)masked", "test_tuple_level", "test_sampled_<variant><n>" (see sampled_metrics)
    metrics: dict[str, dict[str, float]]
    higher_is_better: dict[str, bool]
    cost: Cost
    hardware: Hardware
    packages: dict[str, str]
    git: Git
    config_hash: str  # sha256 of the resolved config, paths and logging left out
    setting_hash: str  # the same without the seed: rows sharing it are repeats of one configuration
    config: dict[str, Any]
    command: str
    wandb: WandbInfo | None = None
    predictions: PredictionsInfo | None = None
    index: IndexInfo | None = None  # set when items were ranked through a vector index
    search: SearchInfo | None = None  # set by search rows (query -> ranked products)
    # the item tokenizer: name, parameters, text encoder and template, semantic-ID health (optional:
    # rows written before it existed stay valid)
    item_tokenizer: dict[str, Any] | None = None
    # the sampled-metrics diagnostic (optional: rows written before it, and generative rows, have none)
    sampled_metrics: SampledInfo | None = None
    # set when this row's setting was chosen on validation among others (optional: most rows have none)
    selection: Selection | None = None

    @field_validator("metrics")
    @classmethod
    def _check_metrics(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        if "test" not in v or not v["test"]:
            raise ValueError("metrics.test is required and must not be empty")
        for split, values in v.items():
            for name, x in values.items():
                if not math.isfinite(x):
                    raise ValueError(f"metrics.{split}.{name} is not finite: {x}")
        return v

    @model_validator(mode="after")
    def _check_val(self) -> ResultRow:
        # Trained models select on validation, so their rows must show it. Zero-shot search has nothing
        # to select and no validation queries (the 150-query ESCI set has none): only search rows may
        # omit it.
        if self.search is None and not self.metrics.get("val"):
            raise ValueError("metrics.val is required (and must not be empty) except in search rows")
        return self


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.{FLOAT_DIGITS}g}")
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v) for v in obj]
    return obj


def write_row(row: ResultRow, path: Path) -> None:
    data = _round(row.model_dump(mode="json"))
    ResultRow.model_validate(data)  # what we write must read back
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_row(path: Path) -> ResultRow:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    try:
        return ResultRow.model_validate(data)
    except Exception as e:
        raise ValueError(f"{path}: not a valid result row (schema {SCHEMA_VERSION}):\n{e}") from None
