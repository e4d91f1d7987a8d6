"""Result rows: schema round trip, validation errors, atomic writes; leaderboard add and build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recbench.leaderboard.__main__ import main as leaderboard_main
from recbench.leaderboard.build import add, build, load_rows
from recbench.results.schema import ResultRow, read_row, write_row

from .test_run import fast_run


@pytest.fixture(scope="module")
def row_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    fast_run(out)
    return out / "result.json"


def test_round_trip_and_rounding_on_write(row_file, tmp_path):
    row = read_row(row_file)
    row.metrics["test"]["ndcg@10"] = 0.123456789123456
    write_row(row, tmp_path / "r.json")
    back = read_row(tmp_path / "r.json")
    assert back.metrics["test"]["ndcg@10"] == 0.12345679  # 8 significant digits, on write only
    assert back.model_dump(exclude={"metrics"}) == row.model_dump(exclude={"metrics"})


def test_invalid_rows_name_the_problem(row_file, tmp_path):
    data = json.loads(row_file.read_text())
    del data["metrics"]["val"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"(?s)bad.json: not a valid result row.*metrics.val is required"):
        read_row(tmp_path / "bad.json")
    data = json.loads(row_file.read_text())
    data["surprise"] = 1
    (tmp_path / "extra.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="surprise"):
        read_row(tmp_path / "extra.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        read_row(tmp_path / "broken.json")


def test_non_finite_metrics_are_rejected(row_file):
    data = json.loads(row_file.read_text())
    data["metrics"]["test"]["ndcg@10"] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        ResultRow.model_validate(data)


def test_failed_write_leaves_nothing_behind(row_file, tmp_path, monkeypatch):
    row = read_row(row_file)
    monkeypatch.setattr("json.dumps", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        write_row(row, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_leaderboard_add_and_build(row_file, tmp_path):
    root = tmp_path / "lb"
    runs = []
    for seed in (0, 1, 2):  # three seeds of one setting, made from one real row
        data = json.loads(row_file.read_text())
        data["seed"], data["run_id"] = seed, f"run{seed}"
        data["metrics"]["test"]["ndcg@10"] = 0.1 + 0.01 * seed
        data["git"]["dirty"] = False
        (tmp_path / f"r{seed}").mkdir()
        (tmp_path / f"r{seed}/result.json").write_text(json.dumps(data))
        runs.append(tmp_path / f"r{seed}")
    assert leaderboard_main(["--root", str(root), "add", *map(str, runs)]) == 0
    assert len(load_rows(root)) == 3
    (root / "references.yaml").write_text(
        "synthetic:\n  - {model: paper model, source: 'Somebody 2024, Table 1', mask_history: false,"
        " metrics: {ndcg@10: 0.5}}\n"
    )
    [md] = build(root)
    text = md.read_text()
    assert md.name == "synthetic.md" and "do not edit" in text
    assert "0.1100 ± 0.0100" in text  # mean ± sample std of 0.10, 0.11, 0.12
    assert "| sasrec | 3 |" in text
    assert "Somebody 2024, Table 1" in text and "0.5000" in text
    assert "python -m recbench.run" in text
    assert (root / "README.md").is_file()


def test_leaderboard_refuses_dirty_rows_unless_asked(row_file, tmp_path):
    data = json.loads(row_file.read_text())
    data["git"]["dirty"] = True
    (tmp_path / "result.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="uncommitted changes"):
        add([tmp_path], tmp_path / "lb")
    assert len(add([tmp_path], tmp_path / "lb", allow_dirty=True)) == 1


def test_leaderboard_cli_reports_missing_rows(tmp_path, capsys):
    assert leaderboard_main(["--root", str(tmp_path), "add", str(tmp_path / "nope")]) == 1
    assert "no result row" in capsys.readouterr().err


def test_committed_leaderboard_is_up_to_date(tmp_path):
    """The committed tables are exactly what `leaderboard build` generates from the committed rows."""
    repo = Path(__file__).resolve().parents[1] / "leaderboards"
    if not list((repo / "results").rglob("*.json")):
        pytest.skip("no committed rows yet")
    copy = tmp_path / "lb"
    shutil.copytree(repo, copy)
    build(copy)
    for md in repo.glob("*.md"):
        assert (copy / md.name).read_text() == md.read_text(), f"{md.name} is stale: run make leaderboard"
