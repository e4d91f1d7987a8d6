"""Ranking metrics for graded relevance (product search): several judged documents per query.

Beside :mod:`recbench.metrics.ranking` (one target per case, computed from its rank), these take a
query's ranked list of documents and the query's judgements. Every metric is computed per query in
float64 and averaged over queries (macro average); nothing is rounded here.

Definitions, for a ranked list ``d_1, d_2, ...`` and gains ``g(d)`` (unjudged documents gain 0):

* ``ndcg@K`` = DCG@K / IDCG@K with linear gains, DCG@K = sum_{i<=K} g(d_i) / log2(i + 1)
  (Järvelin & Kekäläinen, TOIS 2002); IDCG@K is the DCG of the query's judged documents sorted by gain.
  ``ndcg`` without a cut-off uses the whole ranked list (task-1 scoring of the ESCI paper: Reddy et al.,
  "Shopping Queries Dataset", 2022, with gains E 1.0 / S 0.1 / C 0.01 / I 0).
* ``mrr[@K]`` = 1 / rank of the first *relevant* document (0 if none within K) — Voorhees, TREC-8 1999.
* ``recall@K`` = relevant documents within the top K / relevant documents judged for the query.

"Relevant" for the binary metrics is a set of labels (ESCI: ``E`` only); the gains drive nDCG only.
A query without any relevant judged document scores 0 on every metric (as ranx and trec_eval do), and
is counted in the average.

Ties: :func:`rank_by_score` sorts by score and places, among equal scores, the *less* relevant document
first (pessimistic, like :func:`recbench.metrics.ranking.target_ranks`), so a model gains nothing from
the order in which candidates happen to be listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# ESCI task-1 gains (Reddy et al. 2022). The official esci-data scorer was reported to swap S and C;
# this map is the one the paper states, and every result row records the map it used.
ESCI_GAINS: dict[str, float] = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}

_KEY = re.compile(r"^(ndcg|mrr|recall)(?:@(\d+))?$")


@dataclass(frozen=True)
class GradedMetric:
    name: str  # "ndcg", "mrr", "recall"
    k: int | None  # None: the whole ranked list
    higher_is_better: bool = True

    @property
    def key(self) -> str:
        return self.name if self.k is None else f"{self.name}@{self.k}"


def parse_metrics(keys: Sequence[str]) -> list[GradedMetric]:
    """``["ndcg", "ndcg@10", "mrr", "recall@100"]`` -> metrics; recall needs a cut-off."""
    out = []
    for key in keys:
        m = _KEY.match(str(key))
        if not m:
            raise ValueError(f"metric {key!r}: expected ndcg, ndcg@K, mrr, mrr@K or recall@K (K >= 1)")
        name, k = m.group(1), int(m.group(2)) if m.group(2) else None
        if (k is not None and k < 1) or (name == "recall" and k is None):
            raise ValueError(f"metric {key!r}: recall needs a cut-off K >= 1, e.g. recall@10")
        out.append(GradedMetric(name, k))
    return out


def rank_by_score(scores: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Order (indices into ``scores``) best first; equal scores put the lower gain first (pessimistic)."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: the ranking would be meaningless")
    # lexsort: the last key is the primary one; the sort is stable, so input order breaks the rest
    return np.lexsort((np.asarray(gains, dtype=np.float64), -scores))


def query_metrics(
    ranked_gains: np.ndarray,
    ranked_relevant: np.ndarray,
    judged_gains: np.ndarray,
    n_relevant: int,
    metrics: Sequence[GradedMetric],
) -> dict[str, float]:
    """Metrics of one query.

    Args:
        ranked_gains: (n,) gain of each ranked document, best first (0 for unjudged ones).
        ranked_relevant: (n,) bool, whether each ranked document is relevant for the binary metrics.
        judged_gains: gains of all the query's judged documents (for the ideal DCG).
        n_relevant: number of relevant judged documents of the query (recall's denominator).
    """
    g = np.asarray(ranked_gains, dtype=np.float64)
    rel = np.asarray(ranked_relevant, dtype=bool)
    ideal = np.sort(np.asarray(judged_gains, dtype=np.float64))[::-1]
    discount = 1.0 / np.log2(np.arange(2, max(len(g), len(ideal)) + 2, dtype=np.float64))
    out: dict[str, float] = {}
    for m in metrics:
        k = len(g) if m.k is None else m.k
        if m.name == "ndcg":
            idcg = float((ideal[:k] * discount[: len(ideal[:k])]).sum())
            dcg = float((g[:k] * discount[: len(g[:k])]).sum())
            out[m.key] = dcg / idcg if idcg > 0 else 0.0
        elif m.name == "mrr":
            hits = np.flatnonzero(rel[:k])
            out[m.key] = 1.0 / (hits[0] + 1) if len(hits) else 0.0
        else:  # recall
            out[m.key] = float(rel[:k].sum()) / n_relevant if n_relevant else 0.0
    return out


def evaluate_rankings(
    ranked: Sequence[np.ndarray],
    judged: Sequence[Mapping[int, str]],
    metrics: Sequence[GradedMetric],
    gains: Mapping[str, float],
    relevant_labels: Sequence[str] = ("E",),
) -> dict[str, np.ndarray]:
    """Per-query values of each metric.

    Args:
        ranked: per query, document ids best first (a whole candidate list, or a top-K retrieval).
        judged: per query, document id -> label (e.g. "E"); documents absent here gain 0.
    """
    unknown = sorted({lab for j in judged for lab in j.values()} - set(gains))
    if unknown:
        raise ValueError(f"labels {unknown} have no gain; gains are given for {sorted(gains)}")
    per_query: dict[str, list[float]] = {m.key: [] for m in metrics}
    relevant = set(relevant_labels)
    for docs, labels in zip(ranked, judged, strict=True):
        lab = [labels.get(int(d)) for d in docs]
        values = query_metrics(
            ranked_gains=np.array([gains[x] if x is not None else 0.0 for x in lab]),
            ranked_relevant=np.array([x in relevant for x in lab], dtype=bool),
            judged_gains=np.array([gains[x] for x in labels.values()]),
            n_relevant=sum(x in relevant for x in labels.values()),
            metrics=metrics,
        )
        for key, v in values.items():
            per_query[key].append(v)
    return {k: np.asarray(v, dtype=np.float64) for k, v in per_query.items()}


def mean_metrics(per_query: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Macro average over queries, float64, unrounded."""
    if any(len(v) == 0 for v in per_query.values()):
        raise ValueError("no queries: cannot compute metrics")
    return {k: float(np.mean(v, dtype=np.float64)) for k, v in per_query.items()}
