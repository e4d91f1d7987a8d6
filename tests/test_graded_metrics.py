"""Graded-relevance metrics: hand-computed cases, pessimistic ties, and agreement with ranx."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recbench.metrics.graded import (
    ESCI_GAINS,
    evaluate_rankings,
    mean_metrics,
    parse_metrics,
    rank_by_score,
)

METRICS = parse_metrics(["ndcg", "ndcg@3", "mrr", "recall@2"])


def test_hand_computed_query():
    # ranked: S, E, I, C ; judged also has one more E nobody ranked (retrieval-style)
    judged = {0: "S", 1: "E", 2: "I", 3: "C", 9: "E"}
    out = evaluate_rankings([np.array([0, 1, 2, 3])], [judged], METRICS, ESCI_GAINS)
    dcg3 = 0.1 / math.log2(2) + 1.0 / math.log2(3) + 0.0
    idcg3 = 1.0 + 1.0 / math.log2(3) + 0.1 / math.log2(4)
    dcg = dcg3 + 0.01 / math.log2(5)
    idcg = idcg3 + 0.01 / math.log2(5)  # ideal list of all 5 judged: E E S C I
    assert out["ndcg@3"][0] == pytest.approx(dcg3 / idcg3, abs=1e-12)
    assert out["ndcg"][0] == pytest.approx(dcg / idcg, abs=1e-12)
    assert out["mrr"][0] == pytest.approx(0.5)
    assert out["recall@2"][0] == pytest.approx(0.5)  # 1 of the 2 judged E in the top 2


def test_perfect_and_worst_order():
    judged = {0: "E", 1: "S", 2: "C", 3: "I"}
    best = evaluate_rankings([np.array([0, 1, 2, 3])], [judged], METRICS, ESCI_GAINS)
    worst = evaluate_rankings([np.array([3, 2, 1, 0])], [judged], METRICS, ESCI_GAINS)
    assert best["ndcg"][0] == pytest.approx(1.0) and best["mrr"][0] == 1.0
    assert worst["ndcg"][0] < 0.5 and worst["mrr"][0] == pytest.approx(0.25)


def test_query_without_relevant_scores_zero():
    out = evaluate_rankings([np.array([0, 1])], [{0: "I", 1: "I"}], METRICS, ESCI_GAINS)
    assert all(v[0] == 0.0 for v in out.values())


def test_ties_are_pessimistic():
    scores = np.array([1.0, 1.0, 1.0, 0.5])
    gains = np.array([1.0, 0.0, 0.1, 0.0])
    order = rank_by_score(scores, gains)
    assert order.tolist() == [1, 2, 0, 3]  # among the tied three, the E comes last
    # a constant scorer gets the worst ordering, whatever the candidate order
    assert rank_by_score(np.zeros(3), np.array([0.0, 1.0, 0.1])).tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="NaN"):
        rank_by_score(np.array([np.nan]), np.array([1.0]))


def test_unknown_label_and_bad_keys():
    with pytest.raises(ValueError, match="no gain"):
        evaluate_rankings([np.array([0])], [{0: "X"}], METRICS, ESCI_GAINS)
    with pytest.raises(ValueError, match="recall needs a cut-off"):
        parse_metrics(["recall"])
    with pytest.raises(ValueError, match="expected ndcg"):
        parse_metrics(["map@10"])


def test_agrees_with_ranx():
    """nDCG with graded qrels (gains x100 as ints: nDCG is scale-free), MRR and recall with E-only qrels."""
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(0)
    labels = np.array(list("ESCI"))
    gains100 = {"E": 100, "S": 10, "C": 1, "I": 0}
    ranked, judged = [], []
    qrels_graded: dict[str, dict[str, int]] = {}
    qrels_e: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(40):
        n = int(rng.integers(5, 30))
        docs = rng.permutation(200)[:n]
        lab = rng.choice(labels, size=n, p=[0.4, 0.3, 0.1, 0.2])
        lab[0] = "E"  # every query has a relevant document (ranx drops queries without any)
        j = dict(zip(docs.tolist(), lab.tolist(), strict=True))
        scores = rng.permutation(n).astype(float)  # distinct scores: no tie conventions involved
        order = rank_by_score(scores, np.array([ESCI_GAINS[x] for x in lab]))
        ranked.append(docs[order])
        judged.append(j)
        qrels_graded[f"q{q}"] = {f"d{d}": gains100[x] for d, x in j.items()}
        qrels_e[f"q{q}"] = {f"d{d}": 1 for d, x in j.items() if x == "E"}
        run[f"q{q}"] = {f"d{d}": float(s) for d, s in zip(docs.tolist(), scores.tolist(), strict=True)}
    ours = mean_metrics(
        evaluate_rankings(ranked, judged, parse_metrics(["ndcg", "ndcg@10", "mrr", "recall@10"]), ESCI_GAINS)
    )
    r = ranx.Run(run)
    graded = ranx.evaluate(ranx.Qrels(qrels_graded), r, ["ndcg", "ndcg@10"])
    binary = ranx.evaluate(ranx.Qrels(qrels_e), r, ["mrr", "recall@10"])
    assert ours["ndcg"] == pytest.approx(graded["ndcg"], abs=1e-9)
    assert ours["ndcg@10"] == pytest.approx(graded["ndcg@10"], abs=1e-9)
    assert ours["mrr"] == pytest.approx(binary["mrr"], abs=1e-9)
    assert ours["recall@10"] == pytest.approx(binary["recall@10"], abs=1e-9)
