"""ESCI search protocols, versioned: bump ``version`` on any change that moves a number.

* :class:`Rerank` — ESCI task 1 (query-product ranking): each query's judged products are ranked; nDCG
  over the whole list and at 10 with gains E 1.0 / S 0.1 / C 0.01 / I 0 (Reddy et al. 2022), MRR and
  recall@K with E as the relevant label.
* :class:`Retrieve` — the whole product corpus is ranked for each query: recall@10/100 (of E) and nDCG@10
  with the same gains; products nobody judged gain 0. The corpus size goes into the row.

Ties are pessimistic (see :func:`recbench.metrics.graded.rank_by_score`): among equal scores the less
relevant product ranks first. When retrieving, the ranker's top-K is re-sorted that way; a tie across
the K-th position is cut in corpus (product_id) order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recbench.data.esci import SearchDataset
from recbench.metrics.graded import (
    ESCI_GAINS,
    evaluate_rankings,
    mean_metrics,
    parse_metrics,
    rank_by_score,
)
from recbench.search.base import Ranker

TIES = (
    "pessimistic: among equal scores the less relevant product ranks first; "
    "retrieval cuts a tie at the K-th position in product_id order"
)


@dataclass
class SearchEvaluation:
    metrics: dict[str, float]  # mean over queries
    per_query: dict[str, np.ndarray]
    ranked: list[np.ndarray]  # per query, product indices best first
    scores: list[np.ndarray]  # the matching scores
    seconds: float  # ranking time for all queries (query encoding included)


@dataclass
class _SearchProtocol:
    version: str = "1"
    metrics: Sequence[str] = ()
    gains: Mapping[str, float] = field(default_factory=lambda: dict(ESCI_GAINS))
    relevant_labels: Sequence[str] = ("E",)

    task = "search"
    name = "?"

    def __post_init__(self) -> None:
        self.gains = {str(k): float(v) for k, v in self.gains.items()}
        self.relevant_labels = [str(x) for x in self.relevant_labels]
        self.parsed = parse_metrics(list(self.metrics))

    def _evaluate(
        self, ds: SearchDataset, ranked_raw: list[np.ndarray], scores_raw: list[np.ndarray], seconds: float
    ) -> SearchEvaluation:
        ranked, scores = [], []
        for q, (docs, sc) in enumerate(zip(ranked_raw, scores_raw, strict=True)):
            judged = ds.judged(q)
            gains = np.array([self.gains[judged[d]] if d in judged else 0.0 for d in docs.tolist()])
            order = rank_by_score(sc, gains)
            ranked.append(docs[order])
            scores.append(np.asarray(sc)[order])
        judged_all = [ds.judged(q) for q in range(ds.num_queries)]
        per_query = evaluate_rankings(ranked, judged_all, self.parsed, self.gains, self.relevant_labels)
        return SearchEvaluation(mean_metrics(per_query), per_query, ranked, scores, seconds)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": str(self.version),
            "mask_history": False,  # no histories in search; kept so every row has one protocol shape
            "max_history": 0,
            "ranking": self.ranking,
            "ties": TIES,
        }

    ranking = "full"


class Rerank(_SearchProtocol):
    name = "esci-rerank"
    ranking = "judged_list"

    def evaluate(self, ds: SearchDataset, ranker: Ranker) -> SearchEvaluation:
        candidates = [ds.candidates(q) for q in range(ds.num_queries)]
        t = time.perf_counter()
        scores = ranker.score(list(ds.queries), candidates)
        seconds = time.perf_counter() - t
        return self._evaluate(ds, candidates, scores, seconds)


@dataclass
class Retrieve(_SearchProtocol):
    depth: int = 100  # products retrieved per query; must cover the largest metric cut-off

    name = "esci-retrieve"
    ranking = "full"

    def __post_init__(self) -> None:
        super().__post_init__()
        cutoffs = [m.k for m in self.parsed]
        if any(k is None for k in cutoffs):
            raise ValueError("retrieve protocol: every metric needs a cut-off (ndcg@10, not ndcg)")
        if max(k for k in cutoffs if k is not None) > self.depth:
            raise ValueError(f"protocol.depth={self.depth} is below the largest metric cut-off {cutoffs}")

    def evaluate(self, ds: SearchDataset, ranker: Ranker) -> SearchEvaluation:
        t = time.perf_counter()
        scores, ids = ranker.retrieve(list(ds.queries), self.depth)
        seconds = time.perf_counter() - t
        ranked = [row[row >= 0] for row in ids]
        kept = [s[row >= 0] for s, row in zip(scores, ids, strict=True)]
        return self._evaluate(ds, ranked, kept, seconds)
