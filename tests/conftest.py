"""Shared fixtures. Real benchmark files are found through RECBENCH_DATA_DIR; tests that need them are
marked ``data`` and skip with the reason when the files are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def data_dir() -> Path | None:
    env = os.environ.get("RECBENCH_DATA_DIR")
    return Path(env).expanduser() if env else None


@pytest.fixture
def real_data_dir() -> Path:
    d = data_dir()
    if d is None or not d.is_dir():
        pytest.skip(
            "real benchmark data absent: set RECBENCH_DATA_DIR to the folder holding amazon_beauty/ …"
        )
    return d


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never reach W&B servers and never read the user's W&B login."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One text-embedding cache per test session: each synthetic text is encoded once, not per test."""
    return tmp_path_factory.mktemp("embedding-cache")
