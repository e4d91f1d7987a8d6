"""The sampled-metrics diagnostic (Krichene & Rendle, KDD 2020): seeded negatives per case, the sampled
rank, and the leaderboard's Kendall tau between full-ranking and sampled orders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from recbench.data.datamodule import SequentialDataModule
from recbench.data.protocol import LeaveOneOut
from recbench.data.sampled import VARIANTS, NegativeSampler
from recbench.data.synthetic import SyntheticSource
from recbench.inputs import RunContext, train_item_counts
from recbench.leaderboard.build import Group, dataset_markdown, sampled_agreement, sampled_section
from recbench.metrics.ranking import sampled_ranks
from recbench.results.schema import read_row

COMMITTED = Path(__file__).resolve().parents[1] / "leaderboards" / "results"


def negatives_by_user(dm: SequentialDataModule) -> dict[str, dict[int, list[int]]]:
    out: dict[str, dict[int, list[int]]] = {v: {} for v in VARIANTS}
    for batch in dm.test_dataloader():
        for v in VARIANTS:
            for u, row in zip(batch.users.tolist(), batch.sampled[v].tolist(), strict=True):
                out[v][u] = row
    return out


@pytest.fixture(scope="module")
def synthetic():
    ds = SyntheticSource(num_users=120, num_items=300).read("s")
    return ds, LeaveOneOut().split(ds)


def test_negatives_are_the_same_whatever_the_batching(synthetic):
    ds, split = synthetic
    small = negatives_by_user(SequentialDataModule(ds, split, eval_batch_size=7, seed=1))
    large = negatives_by_user(SequentialDataModule(ds, split, eval_batch_size=64, seed=2))
    assert small == large and len(small["uniform"]) == len(split.test)
    assert small["uniform"] != small["popularity"]
    # validation batches carry none, and sampled_negatives=0 turns them off
    dm = SequentialDataModule(ds, split)
    assert next(iter(dm.val_dataloader())).sampled == {}
    assert next(iter(SequentialDataModule(ds, split, sampled_negatives=0).test_dataloader())).sampled == {}
    assert SequentialDataModule(ds, split, sampled_negatives=0).describe_sampled() is None


def test_negatives_exclude_the_target_and_the_history_without_replacement(synthetic):
    ds, split = synthetic
    drawn = negatives_by_user(SequentialDataModule(ds, split, eval_batch_size=50))
    counts = train_item_counts(RunContext(ds, split, None))
    for u, pos in zip(split.test.users.tolist(), split.test.target_pos.tolist(), strict=True):
        seen = set(ds.items[ds.offsets[u] : pos + 1].tolist())  # history and target
        for v in VARIANTS:
            row = drawn[v][u]
            assert len(row) == 100 and len(set(row)) == 100 and min(row) >= 0
            assert not seen & set(row)
        assert all(counts[i] > 0 for i in drawn["popularity"][u])


def test_popularity_negatives_follow_training_counts():
    """One negative per case (no without-replacement distortion): frequencies match the weights, by the
    rejection path and, when the history holds most of the weight, by the direct draw."""
    weights = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256], dtype=np.int64)
    sampler = NegativeSampler(len(weights), weights, n=1)
    cases = 20000
    for excluded in ([0], [9]):  # item 9 holds half the weight: the direct path
        observed = np.bincount(
            [sampler.draw("popularity", u, 0, np.array(excluded))[0] for u in range(cases)],
            minlength=len(weights),
        )
        expected = weights.astype(float)
        expected[excluded] = 0
        assert observed[0] == 0 and observed[excluded].sum() == 0  # zero weight and excluded: never drawn
        keep = expected > 0
        p = stats.chisquare(observed[keep], expected[keep] / expected.sum() * cases).pvalue
        assert p > 1e-3, (observed, p)
    uniform = np.bincount(
        [sampler.draw("uniform", u, 0, np.array([3]))[0] for u in range(cases)], minlength=10
    )
    assert uniform[3] == 0 and stats.chisquare(np.delete(uniform, 3)).pvalue > 1e-3


def test_popular_items_are_drawn_more_often_among_100():
    rng = np.random.default_rng(0)
    counts = np.minimum(rng.zipf(1.3, 2000), 500)
    sampler = NegativeSampler(len(counts), counts)
    freq = np.zeros(len(counts))
    for u in range(300):
        np.add.at(freq, sampler.draw("popularity", u, 0, np.arange(5)), 1)
    head, tail = np.argsort(-counts)[5:55], np.flatnonzero(counts == 1)
    assert freq[head].mean() > 5 * freq[tail].mean()
    assert stats.spearmanr(counts[5:], freq[5:]).statistic > 0.5


def test_fewer_eligible_items_than_negatives_gives_all_of_them_padded():
    sampler = NegativeSampler(8, np.array([1, 1, 0, 1, 1, 1, 1, 1]), n=6)
    out = sampler.draw("popularity", 0, 0, np.array([0, 1, 3]))
    assert sorted(out[out >= 0].tolist()) == [4, 5, 6, 7] and (out[4:] == -1).all()
    assert sorted(sampler.draw("uniform", 0, 0, np.array([0, 1, 3])).tolist()) == [-1, 2, 4, 5, 6, 7]


def test_sampled_rank_by_hand():
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.5, 0.5, 0.2, 0.7],  # target 2 (0.5): negatives 3 (tie), 5 (0.7) above, 1 below
            [0.3, 0.8, 0.1, 0.0, 0.6, 0.2],  # target 1 (0.8): negatives 0, 4, -1 (padding): none above
        ]
    )
    targets = torch.tensor([2, 1])
    negatives = torch.tensor([[3, 5, 1], [0, 4, -1]])
    assert sampled_ranks(scores, targets, negatives).tolist() == [3, 1]
    # padding never counts, even where item 0 would outrank the target
    assert sampled_ranks(
        scores, torch.tensor([1, 3]), torch.tensor([[-1, -1, 2], [-1, -1, -1]])
    ).tolist() == [
        2,
        1,
    ]
    with pytest.raises(ValueError, match="NaN"):
        sampled_ranks(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), torch.tensor([[1]]))


# ---- leaderboard --------------------------------------------------------------------------------------
def rows_with(full: float, uniform: float | None, popularity: float | None = None):
    base = read_row(sorted(COMMITTED.rglob("seqrec-loo-full/ml_1m/*/seed0-*.json"))[0])
    # whichever committed row comes first: its own sampled splits, if it has them, are dropped
    metrics = {k: dict(v) for k, v in base.metrics.items() if not k.startswith("test_sampled_")}
    metrics["test"]["ndcg@10"] = full
    if uniform is not None:
        metrics["test_sampled_uniform100"] = {"ndcg@10": uniform}
    if popularity is not None:
        metrics["test_sampled_popularity100"] = {"ndcg@10": popularity}
    return base.model_copy(update={"metrics": metrics})


def group(label: str, *rows) -> Group:
    return Group(label, label[:8], list(rows), [])


def test_kendall_tau_and_swapped_pairs_by_hand():
    # full order A > B > C > D; uniform order A > C > B (B, C swap); D has no sampled metrics
    groups = [
        group("A", rows_with(0.10, 0.50, 0.20)),
        group("B", rows_with(0.08, 0.30, 0.25), rows_with(0.06, 0.34, 0.27)),  # means 0.07, 0.32, 0.26
        group("C", rows_with(0.05, 0.40, 0.10)),
        group("D", rows_with(0.01, None)),
    ]
    uniform = sampled_agreement(groups, "test_sampled_uniform100")
    assert [e[0] for e in uniform.entries] == ["A", "B", "C"]
    assert uniform.entries[1][1:] == (2, pytest.approx(0.07), pytest.approx(0.32))
    assert uniform.tau == pytest.approx(1 / 3)  # 2 concordant, 1 discordant pair of 3
    assert uniform.swaps == [(1, 2)]
    popularity = sampled_agreement(groups, "test_sampled_popularity100")  # order B > A > C: A/B swap
    assert popularity.swaps == [(0, 1)] and popularity.tau == pytest.approx(1 / 3)
    assert [a.protocol for a in sampled_section(groups)] == ["uniform100", "popularity100"]
    md = dataset_markdown(groups, [])
    assert "## Sampled metrics (diagnostic)" in md
    assert "| uniform100 | 3 | 0.333 | B / C (full 0.0700 > 0.0500, sampled 0.3200 < 0.4000) |" in md
    assert "| D |" not in md.split("## Sampled metrics")[1].split("## How")[0]


def test_sampled_section_absent_or_one_line():
    no_sampled = [group("A", rows_with(0.1, None)), group("B", rows_with(0.2, None))]
    assert sampled_section(no_sampled) == [] and "Sampled metrics" not in dataset_markdown(no_sampled, [])
    one = [group("A", rows_with(0.1, 0.3)), group("B", rows_with(0.2, None))]
    section = dataset_markdown(one, []).split("## Sampled metrics (diagnostic)")[1].split("## How")[0]
    assert "Fewer than 2 groups have sampled metrics: no order to compare." in section
    assert "Kendall tau |" not in section
