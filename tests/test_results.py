"""Result rows: schema round trip, validation errors, atomic writes; leaderboard add and build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

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


def test_a_new_key_at_its_neutral_value_keeps_the_old_hashes():
    """Rows made before model.net.positions / norm existed group with rows that hold the old behaviour."""
    from omegaconf import OmegaConf

    from recbench.results.builder import config_hashes

    base = {"paths": {"data_dir": "/x"}, "seed": 0, "model": {"net": {"dropout": 0.2}}}
    old = OmegaConf.create(base)
    neutral = OmegaConf.create(
        {**base, "model": {"net": {"dropout": 0.2, "positions": "from_end", "norm": "pre"}}}
    )
    changed = OmegaConf.create({**base, "model": {"net": {"dropout": 0.2, "positions": "from_start"}}})
    assert config_hashes(neutral) == config_hashes(old)
    assert config_hashes(changed)[1] != config_hashes(old)[1]


def test_published_next_item_rows_keep_their_config_hash():
    """Every committed next-item row's command, composed with today's conf/, hashes as the row did: a
    changed default, or a new key that changes no number but is hashed, would silently split a published
    setting (and its leaderboard group) from rows made with the same command today. Keep old behaviour as a
    value in ``NEUTRAL_WHEN`` or pin it in ``HASHED_AS`` (recbench/results/builder.py)."""
    import shlex

    from hydra import compose, initialize_config_dir

    from recbench.results.builder import config_hashes

    from .conftest import CONF_DIR

    rows = sorted((Path(__file__).resolve().parents[1] / "leaderboards" / "results").rglob("*.json"))
    checked = 0
    for path in rows:
        row = read_row(path)
        if row.config["model"].get("task", "next_item") != "next_item":
            continue  # search runs reshape their config before hashing (recbench/search/run.py)
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=shlex.split(row.command)[3:])
        assert config_hashes(cfg)[0] == row.config_hash, f"{path.name}: {row.command}"
        checked += 1
    assert checked >= 20


def test_peak_memory_restarts_for_each_run():
    """A sweep's jobs run in one process: each row's peak is its own, not the sweep's so far."""
    import numpy as np

    from recbench.utils.environment import peak_memory_mb, reset_peak_memory

    big = np.ones(300 * 2**20 // 8)  # 300 MB, touched
    high = peak_memory_mb()
    del big
    if not reset_peak_memory():
        pytest.skip("this system cannot reset the peak (no /proc/self/clear_refs)")
    assert peak_memory_mb() < high - 200


def test_cold_slice_counts_training_occurrences_and_scores_only_cold_targets():
    """Item "c" occurs once in training (cold), "a" seven times (not): only the case whose test target is
    "c" enters test_cold5, with its own rank, in each history setting. (Training: every item before a
    user's validation item.)"""
    from types import SimpleNamespace

    from recbench.data.dataset import SequenceDataset
    from recbench.data.protocol import LeaveOneOut
    from recbench.metrics.ranking import build_metrics
    from recbench.results.builder import cold_slice

    seqs = [
        ("u0", ["a", "a", "a", "b", "x", "c"]),  # test target c
        ("u1", ["a", "a", "c", "b", "y", "a"]),  # test target a
        ("u2", ["a", "a", "b", "b", "z", "a"]),  # test target a
    ]
    ds = SequenceDataset.from_sequences("tiny", seqs)
    split = LeaveOneOut().split(ds)
    item = {name: i for i, name in enumerate(ds.item_ids)}
    targets = np.array([item["c"], item["a"], item["a"]])
    metrics = build_metrics(names=["recall", "ndcg"], ks=[1, 10])
    module = SimpleNamespace(
        mask_history=False,
        metrics=metrics,
        predictions={
            "users": np.arange(3),
            "targets": targets,
            "plain": np.array([3, 1, 1]),
            "masked": np.array([2, 1, 1]),
        },
    )
    out = cold_slice(module, ds, split)
    assert set(out) == {"test_cold5", "test_cold5_history_masked"}
    assert out["test_cold5"]["cases"] == 1.0 and out["test_cold5"]["recall@1"] == 0.0
    assert out["test_cold5"]["ndcg@10"] == pytest.approx(1 / np.log2(4))  # rank 3
    assert out["test_cold5_history_masked"]["ndcg@10"] == pytest.approx(1 / np.log2(3))  # rank 2
    module.predictions["targets"] = np.array([item["a"]] * 3)
    assert cold_slice(module, ds, split) == {}  # no cold target: no slice
