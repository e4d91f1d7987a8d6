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
    # a search row may omit validation; the same row without its search block may not
    data = json.loads((run_dir / "result.json").read_text())
    data["search"] = None
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"metrics\.val is required"):
        read_row(tmp_path / "bad.json")
    root = tmp_path / "board"
    add([run_dir], root, allow_dirty=True)
    (page,) = build(root)
    assert page.name == "esci-retrieve_search_synthetic.md"
    text = page.read_text()
    assert "nDCG gains E 1, S 0.1, C 0.01, I 0" in text and "| bm25 | 1 |" in text
    assert "R@100" in text and "corpus 80" in text
