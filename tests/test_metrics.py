"""Ranking metrics: hand-computed cases, tie handling, and agreement with ranx on random data."""

import math

import numpy as np
import pytest
import torch

from recbench.metrics import ranking
from recbench.metrics.ranking import build_metrics, compute, count_at_least, target_ranks


def test_target_ranks_hand_computed():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([2, 0, 1])
    # row 0: 0.9 beats 0.5 -> rank 2; row 1: best -> 1; row 2: all tie -> pessimistic rank 4
    assert target_ranks(scores, targets).tolist() == [2, 1, 4]


def test_ties_count_against_the_target():
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]])
    assert target_ranks(scores, torch.tensor([2])).item() == 3  # ties with items 1 and 3: placed after both


def test_nan_scores_are_an_error():
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.tensor([[float("nan"), 1.0]]), torch.tensor([1]))


@pytest.mark.parametrize("where", [(0, 0), (2, 7), (-1, -1)])
def test_nan_anywhere_is_an_error(where):
    scores = torch.randn(3, 9)
    scores[where] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(scores, torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (37, 1000), (300, 12101)])
def test_fast_count_equals_the_plain_comparison(shape, monkeypatch):
    """Chunked 0/1 float sums give exactly the bool count, with ties, infinities and chunk edges."""
    g = torch.Generator().manual_seed(sum(shape))
    scores = torch.randint(-3, 4, shape, generator=g).float()  # many ties
    scores[scores == 3] = float("inf")
    scores[scores == -3] = float("-inf")
    thresholds = scores.gather(1, torch.randint(0, shape[1], (shape[0], 1), generator=g))
    expected = (scores >= thresholds).sum(1)
    for chunk_bytes in (1, 4 * shape[1] * 2 + 1, 1 << 20):  # one row, a few rows, the default
        monkeypatch.setattr(ranking, "_CHUNK_BYTES", chunk_bytes)
        got = count_at_least(scores, thresholds)
        assert got.dtype == torch.int64 and torch.equal(got, expected)


def test_metric_values_hand_computed():
    ranks = np.array([1, 2, 3, 10, 11, 100])
    got = compute(build_metrics(["recall", "ndcg", "mrr"], [1, 3, 10]), ranks)
    assert got["recall@1"] == pytest.approx(1 / 6)
    assert got["recall@3"] == pytest.approx(3 / 6)
    assert got["recall@10"] == pytest.approx(4 / 6)
    assert got["ndcg@3"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(4)) / 6)
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(11)) / 6)
    assert got["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 10) / 6)
    assert got["mrr@1"] == got["recall@1"] == got["ndcg@1"]


def test_metrics_are_float64_and_unrounded():
    ranks = np.array([1, 2, 4])
    value = compute(build_metrics(["ndcg"], [5]), ranks)["ndcg@5"]
    assert value == (1 + 1 / math.log2(3) + 1 / math.log2(5)) / 3  # exact float64, no rounding


def test_unknown_metric_names_the_key():
    with pytest.raises(ValueError, match=r"metrics.names: unknown metric\(s\) \['precison'\]"):
        build_metrics(["precison"], [10])
    with pytest.raises(ValueError, match=r"metrics\.ks"):
        build_metrics(["ndcg"], [0])


def test_no_cases_is_an_error():
    with pytest.raises(ValueError, match="no evaluation cases"):
        compute(build_metrics(["ndcg"], [10]), np.array([], dtype=np.int64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_ranx_on_random_scores(seed):
    """Independent implementation: ranx (Bassani, ECIR 2022) on the same random full rankings."""
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(seed)
    n_users, n_items = 300, 500
    scores = rng.standard_normal((n_users, n_items))  # continuous: no ties, so tie policy is moot
    targets = rng.integers(n_items, size=n_users)
    ranks = target_ranks(torch.from_numpy(scores), torch.from_numpy(targets)).numpy()
    ours = compute(build_metrics(["recall", "ndcg", "mrr"], [1, 5, 10, 20]), ranks)

    qrels = ranx.Qrels({f"u{u}": {f"i{targets[u]}": 1} for u in range(n_users)})
    run = ranx.Run({f"u{u}": {f"i{i}": float(scores[u, i]) for i in range(n_items)} for u in range(n_users)})
    names = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (1, 5, 10, 20)]
    theirs = ranx.evaluate(qrels, run, [n.replace("recall", "hit_rate") for n in names])
    for name in names:
        assert ours[name] == pytest.approx(theirs[name.replace("recall", "hit_rate")], abs=1e-12), name


def reference_masked_ranks(scores, targets, rows, items):
    """What evaluation computed before: a masked copy of the scores, ranked again."""
    masked = scores.clone()
    masked[rows, items] = float("-inf")
    return target_ranks(masked, targets)


@pytest.mark.parametrize("seed", range(5))
def test_masked_ranks_equal_ranking_a_masked_copy_exactly(seed):
    """Ties (scores on a coarse grid), repeated history items, targets that are history items, -inf
    scores, cases without history: the derived masked rank equals the masked copy's, integer for integer."""
    from recbench.metrics.ranking import masked_ranks

    g = torch.Generator().manual_seed(seed)
    cases, num_items = 64, 40
    scores = torch.randint(0, 6, (cases, num_items), generator=g).float()  # many ties
    scores[0, :] = float("-inf")
    scores[1, 3] = float("-inf")
    targets = torch.randint(0, num_items, (cases,), generator=g)
    lengths = torch.randint(0, 12, (cases,), generator=g)
    lengths[2] = 0
    rows = torch.repeat_interleave(torch.arange(cases), lengths)
    items = torch.randint(0, num_items, (len(rows),), generator=g)
    first = torch.nonzero(rows == 5).flatten()
    items[first] = targets[5]  # a target seen before (repeat consumption)
    items[first[1:]] = int(items[first[0]])  # and the same history item several times
    plain = target_ranks(scores, targets)
    got = masked_ranks(scores, targets, plain, rows, items)
    assert torch.equal(got, reference_masked_ranks(scores, targets, rows, items))
    assert got[5] == num_items and got.dtype == plain.dtype


def test_masked_ranks_hand_computed():
    from recbench.metrics.ranking import masked_ranks

    scores = torch.tensor([[0.9, 0.5, 0.7, 0.1], [0.2, 0.8, 0.8, 0.3]])
    targets = torch.tensor([1, 2])
    plain = target_ranks(scores, targets)  # [3, 2]: item 1 after 0.9 and 0.7; item 2 ties item 1
    rows, items = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 3])  # item 0 twice; item 1 ties
    assert plain.tolist() == [3, 2]
    assert masked_ranks(scores, targets, plain, rows, items).tolist() == [2, 1]
