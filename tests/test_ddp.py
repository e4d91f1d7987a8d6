"""Distributed evaluation counts every user exactly once: 2 CPU processes (gloo) give the same test
metrics as one process on the same checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from recbench.utils.callbacks import EpochTimer

from .conftest import CONF_DIR


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_ddp_metrics_equal_single_process(tmp_path):
    # 301 users: odd, so the distributed sampler must pad one rank with a repeated user
    cmd = [
        sys.executable,
        "-m",
        "recbench.run",
        "data=synthetic",
        "data.source.num_users=301",
        "debug=fast",
        "trainer=ddp",
        "logger=none",
        f"hydra.run.dir={tmp_path}/ddp",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    ddp = json.loads((tmp_path / "ddp/result.json").read_text())
    assert ddp["hardware"]["devices"] == 2 and ddp["dataset"]["eval_users"] == 301

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "data=synthetic",
                "data.source.num_users=301",
                "debug=fast",
                f"paths.output_dir={tmp_path}/single",
                "logger=none",
            ],
        )
    dataset = instantiate(cfg.data)
    protocol = instantiate(cfg.protocol)
    datamodule = instantiate(cfg.datamodule)(dataset=dataset, split=protocol.split(dataset))
    module = instantiate(cfg.model.module)(
        net=instantiate(cfg.model.net)(num_items=dataset.num_items),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.model.optimizer),
        metrics=instantiate(cfg.metrics),
        mask_history=False,
    )
    trainer = instantiate(cfg.trainer, callbacks=[EpochTimer(cfg.monitor)], logger=False)
    [best] = (tmp_path / "ddp/checkpoints").glob("best-*.ckpt")
    trainer.test(module, datamodule=datamodule, ckpt_path=str(best))
    assert len(module.predictions["users"]) == 301
    # the sampled negatives are drawn per user, so each rank draws those of a single-process run
    for split in ("test", "test_history_masked", "test_sampled_uniform100", "test_sampled_popularity100"):
        for name, value in module.results[split].items():
            assert ddp["metrics"][split][name] == pytest.approx(value, rel=1e-7), (split, name)
