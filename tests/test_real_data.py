"""Data tier: the real benchmark files match their published statistics exactly."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from recbench.data.protocol import LeaveOneOut

from .conftest import CONF_DIR

pytestmark = pytest.mark.data


def load(name: str, data_dir, tmp_path):
    if not (data_dir / name).is_dir():
        pytest.skip(f"{data_dir / name} absent")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"data={name}",
                f"paths.data_dir={data_dir}",
                f"paths.cache_dir={tmp_path}",
                f"paths.output_dir={tmp_path}",
            ],
        )
    return instantiate(cfg.data)


def test_amazon_beauty_published_statistics(real_data_dir, tmp_path):
    ds = load("amazon_beauty", real_data_dir, tmp_path)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (22_363, 12_101, 198_502)
    stats = ds.stats()
    assert stats["min_seq_len"] >= 5  # 5-core
    assert stats["item_text_coverage"] == 1.0
    assert ds.item_text["title"].str.len().gt(0).all()
    split = LeaveOneOut().split(ds)
    assert split.dropped_users == 0 and len(split.test) == 22_363
    # the cached copy is the same data
    again = load("amazon_beauty", real_data_dir, tmp_path)
    assert again.fingerprint() == ds.fingerprint()
