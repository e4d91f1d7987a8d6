"""Paired significance tests between leaderboard rows, on per-user metric values.

Each row added to the leaderboard keeps its test users' ranks (``<row>.ranks.npz``: user index, rank
unmasked, rank history-masked). Two settings on the same dataset are compared user by user: the per-user
metric is averaged over each setting's seeds, then a two-sided paired t-test (scipy.stats.ttest_rel) is
run over users. With tens of thousands of users the t-test's normal approximation is sound; p-values are
not corrected for multiple comparisons (one comparison per row against the best row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from recbench.metrics.ranking import RankMetric
from recbench.utils.files import atomic_file


def ranks_path(row_file: Path) -> Path:
    return row_file.with_suffix(".ranks.npz")


def save_ranks(path: Path, users: np.ndarray, rank: np.ndarray, rank_history_masked: np.ndarray) -> None:
    order = np.argsort(users, kind="stable")
    with atomic_file(path) as f:
        np.savez_compressed(
            f,
            user=users[order].astype(np.int32),
            rank=rank[order].astype(np.int32),
            rank_history_masked=rank_history_masked[order].astype(np.int32),
        )


def per_user(files: list[Path], metric: RankMetric, masked: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(users, metric value per user averaged over the given seeds' rank files); None if any is missing."""
    if not files or not all(f.is_file() for f in files):
        return None
    values, users = [], None
    for f in files:
        data = np.load(f)
        if users is None:
            users = data["user"]
        elif not np.array_equal(users, data["user"]):
            raise ValueError(f"{f}: evaluated users differ from the other seeds of its setting")
        values.append(metric.per_case(data["rank_history_masked" if masked else "rank"]))
    assert users is not None
    return users, np.mean(values, axis=0)


def paired_p_value(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float | None:
    """Two-sided paired t-test over the users both sides evaluated; None when undefined."""
    common, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    if len(common) < 2:
        return None
    diff = a[1][ia] - b[1][ib]
    if np.allclose(diff, 0):
        return 1.0
    return float(stats.ttest_rel(a[1][ia], b[1][ib]).pvalue)
