"""Search result rows: optional schema fields, no validation split, and their leaderboard table."""

from __future__ import annotations

import json

import pytest

from recbench.leaderboard.build import add, build
from recbench.results.schema import read_row

from .test_run import fast_run


def test_search_row_schema_and_leaderboard(tmp_path):
    run_dir = tmp_path / "run"
    fast_run(run_dir, "data=search_synthetic", "model=bm25", "protocol=esci_retrieve")
    row = read_row(run_dir / "result.json")
    assert "val" not in row.metrics and row.search is not None and row.index is None
    assert row.protocol.ranking == "full" and row.search.depth == 100
    assert row.dataset.item_text_coverage == 1.0  # every synthetic product has a title
    # a search row may omit validation; the same row without its search block may not
    data = json.loads((run_dir / "result.json").read_text())
    data["search"] = None
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"metrics\.val is required"):
        read_row(tmp_path / "bad.json")
    root = tmp_path / "board"
    add([run_dir], root, allow_dirty=True)
    page = build(root)[0]
    assert page.name == "esci-retrieve_search_synthetic.md"
    text = page.read_text()
    assert "nDCG gains E 1, S 0.1, C 0.01, I 0" in text and "| bm25 | 1 |" in text
    assert "R@100" in text and "corpus 80" in text


@pytest.mark.data
@pytest.mark.slow  # about a minute on 2 busy cores (ranx compiles with numba)
def test_real_esci_150_rerank_agrees_with_ranx(real_data_dir, tmp_path):
    """BM25 on the real 150-query set: the row's metrics recomputed by ranx from the predictions."""
    if not (real_data_dir / "esci").is_dir():
        pytest.skip("esci/ absent from RECBENCH_DATA_DIR")
    ranx = pytest.importorskip("ranx")
    import pandas as pd

    row = fast_run(tmp_path, "experiment=esci150_bm25", "data=esci_us_150", f"paths.data_dir={real_data_dir}")
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    gains100 = {"E": 100, "S": 10, "C": 1, "I": 0}
    qrels, qrels_e, run = {}, {}, {}
    for q, ids, labels in zip(preds["query_id"], preds["product_ids"], preds["labels"], strict=True):
        qrels[q] = {d: gains100[x] for d, x in zip(ids, labels, strict=True)}
        qrels_e[q] = {d: 1 for d, x in zip(ids, labels, strict=True) if x == "E"}
        run[q] = {d: float(len(ids) - i) for i, d in enumerate(ids)}  # the row's order, ties resolved
    graded = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["ndcg", "ndcg@10"])
    binary = ranx.evaluate(ranx.Qrels(qrels_e), ranx.Run(run), ["mrr", "recall@10"])
    for key, value in {**graded, **binary}.items():
        assert row.metrics["test"][key] == pytest.approx(value, abs=1e-9), key
