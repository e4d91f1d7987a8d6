"""Semantic-ID tokenizers: planted structure is recovered, tuples are unique after de-duplication, the
health report is right on hand-made codes, fitted codes are cached by input hash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recbench.data.dataset import SequenceDataset
from recbench.tokenizers.atomic import AtomicTokenizer
from recbench.tokenizers.random_ids import RandomIdTokenizer
from recbench.tokenizers.rqkmeans import RQKMeansTokenizer
from recbench.tokenizers.rqvae import RQVAETokenizer
from recbench.tokenizers.semantic import code_health, deduplicate, default_template


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """320 points = top[a] + sub[b] + noise: level 0 should find a (4 clusters), level 1 b (4 offsets)."""
    rng = np.random.default_rng(seed)
    top, sub = rng.normal(size=(4, 32)), rng.normal(size=(4, 32)) * 0.3
    a, b = np.repeat(np.arange(4), 80), np.tile(np.repeat(np.arange(4), 20), 4)
    return (top[a] + sub[b] + 0.02 * rng.normal(size=(320, 32))).astype(np.float32), a, b


def one_to_one(labels: np.ndarray, codes: np.ndarray) -> bool:
    return len(set(zip(labels.tolist(), codes.tolist(), strict=True))) == len(set(labels.tolist()))


@pytest.mark.parametrize(
    "tokenizer",
    [
        RQKMeansTokenizer(num_levels=2, codebook_size=4),
        RQVAETokenizer(
            num_levels=2, codebook_size=4, hidden=[64], latent_dim=16, epochs=200, batch_size=64, lr=1e-3
        ),
    ],
    ids=["rqkmeans", "rqvae"],
)
def test_planted_structure_is_recovered(tokenizer):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide MLP: threads only add contention (10x slower on a busy machine)
    try:
        _check_planted(tokenizer)
    finally:
        torch.set_num_threads(threads)


def _check_planted(tokenizer):
    x, a, b = planted()
    codes = tokenizer.fit_embeddings(x).codes()
    assert one_to_one(a, codes[:, 0]) and one_to_one(b, codes[:, 1])
    info = tokenizer.describe()
    assert info["unique_semantic_tuples"] == 16 and info["unique_after_dedup"]
    assert [lv["utilization"] for lv in info["levels"][:2]] == [1.0, 1.0]
    assert info["levels"][0]["perplexity"] == pytest.approx(4.0)


def test_deduplicate_numbers_colliding_items_in_item_order():
    codes = np.array([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    out = deduplicate(codes)
    assert out[:, -1].tolist() == [0, 0, 1, 2, 0]
    assert len(np.unique(out, axis=0)) == len(out)


def test_health_on_hand_made_codes():
    codes = deduplicate(np.array([[0, 0], [0, 0], [0, 1], [1, 1]]))
    h = code_health(codes, [4, 2, 2], semantic_levels=2)
    assert h["levels"][0]["used"] == 2 and h["levels"][0]["utilization"] == 0.5
    assert h["levels"][0]["perplexity"] == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))
    assert h["collision_rate"] == 0.5 and h["max_items_per_tuple"] == 2
    assert h["max_items_per_prefix"] == [3, 2, 1] and h["unique_after_dedup"]


def test_random_ids_are_seeded_and_unique():
    ds = SequenceDataset.from_sequences("t", [("u", [f"i{i}" for i in range(300)])])
    a = RandomIdTokenizer(num_levels=2, codebook_size=8, seed=1).fit(ds).codes()
    b = RandomIdTokenizer(num_levels=2, codebook_size=8, seed=1).fit(ds).codes()
    assert np.array_equal(a, b) and len(np.unique(a, axis=0)) == 300 and a[:, :2].max() < 8


def test_codes_are_cached_by_input_hash(tmp_path):
    x, _, _ = planted()
    first = RQKMeansTokenizer(num_levels=2, codebook_size=4, cache_dir=str(tmp_path)).fit_embeddings(x)
    files = list((tmp_path / "semantic_ids").glob("*.npy"))
    assert len(files) == 1
    again = RQKMeansTokenizer(num_levels=2, codebook_size=4, cache_dir=str(tmp_path)).fit_embeddings(x)
    assert np.array_equal(first.codes(), again.codes())
    RQKMeansTokenizer(num_levels=2, codebook_size=4, cache_dir=str(tmp_path)).fit_embeddings(x[::-1].copy())
    assert len(list((tmp_path / "semantic_ids").glob("*.npy"))) == 2  # other inputs, other key


def test_tiny_sets_clip_the_codebook():
    x, _, _ = planted()
    tok = RQKMeansTokenizer(num_levels=2, codebook_size=256).fit_embeddings(x[:50])
    assert tok.code_sizes[:2] == [50, 50] and len(np.unique(tok.codes(), axis=0)) == 50


def test_text_template_and_missing_text():
    assert default_template(["title", "categories"]) == "title: {title}. categories: {categories}"
    ds = SequenceDataset.from_sequences("t", [("u", ["a", "b"])])
    with pytest.raises(ValueError, match="no item text"):
        RQKMeansTokenizer().fit(ds)
    text = pd.DataFrame({"title": ["x"]}, index=["a"])
    assert AtomicTokenizer().fit(
        SequenceDataset.from_sequences("t", [("u", ["a"])], item_text=text)
    ).codes().shape == (1, 1)


def test_atomic_tokenizer_names_unexpected_keys():
    with pytest.raises(
        ValueError, match=r"takes no parameters, got: codebook_size.*'~tokenizer.codebook_size'"
    ):
        AtomicTokenizer(codebook_size=256)
