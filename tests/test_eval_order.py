"""Evaluation batched by history length (``datamodule.eval_order=length``) scores the same cases to the same
ranks as batching in user order; verify re-runs a row with the order it was made with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from recbench.data.datamodule import SequentialDataModule
from recbench.data.protocol import LeaveOneOut
from recbench.data.synthetic import SyntheticSource
from recbench.errors import RefusedError
from recbench.inputs import RunContext, model_inputs
from recbench.leaderboard.verify import rounding_overrides
from recbench.metrics.ranking import target_ranks
from recbench.results.builder import config_hashes
from recbench.results.schema import read_row
from recbench.utils.instantiate import instantiate

from .conftest import CONF_DIR
from .test_security import ROW


def datamodule(order: str, **kw) -> SequentialDataModule:
    ds = SyntheticSource(num_users=120, num_items=40, seed=3).read("s")
    return SequentialDataModule(
        ds, LeaveOneOut().split(ds), max_len=12, eval_batch_size=16, eval_order=order, **kw
    )


def test_length_order_batches_every_case_once_shortest_first():
    dm = datamodule("length")
    batches = list(dm.val_dataloader())
    users = torch.cat([b.users for b in batches]).tolist()
    assert sorted(users) == sorted(dm.split.val.users.tolist())
    widths = [b.inputs.shape[1] for b in batches]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    given = list(datamodule("given").val_dataloader())
    assert torch.cat([b.users for b in given]).tolist() == dm.split.val.users.tolist()
    assert sum(b.inputs.numel() for b in batches) < sum(b.inputs.numel() for b in given)


def test_unknown_order_is_an_error():
    with pytest.raises(ValueError, match="eval_order must be one of"):
        datamodule("random")


def ranks_by_user(module, dm: SequentialDataModule, stage: str) -> dict[int, tuple[int, float]]:
    out = {}
    loader = dm.val_dataloader() if stage == "val" else dm.test_dataloader()
    with torch.no_grad():
        for batch in loader:
            scores = module.score(batch)
            ranks = target_ranks(scores, batch.targets)
            target_scores = scores[torch.arange(len(ranks)), batch.targets]
            for u, r, s in zip(batch.users.tolist(), ranks.tolist(), target_scores.tolist(), strict=True):
                out[u] = (r, s)
    return out


@pytest.mark.parametrize("model", ["sasrec", "gru4rec", "caser", "bert4rec", "hstu"])
def test_same_ranks_in_either_order(model):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}", "data=synthetic", "model.net.max_len=12"])
    given, length = datamodule("given"), datamodule("length")
    torch.manual_seed(0)
    ni, ri = model_inputs(cfg.model, RunContext(given.ds, given.split, None))
    net = instantiate(cfg.model.net)(**ni)
    module = instantiate(cfg.model.module)(
        net=net, loss=instantiate(cfg.loss), optimizer=instantiate(cfg.model.optimizer), metrics=[], **ri
    ).eval()
    for stage in ("val", "test"):
        a, b = ranks_by_user(module, given, stage), ranks_by_user(module, length, stage)
        assert a.keys() == b.keys()
        assert [a[u][0] for u in a] == [b[u][0] for u in a], f"{model} {stage}: ranks differ"
        assert np.allclose([a[u][1] for u in a], [b[u][1] for u in a], atol=1e-5)


def composed(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=overrides)


def test_order_is_outside_the_hash_and_verify_pins_it():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        length = compose("config", overrides=["data=synthetic"])
        given = compose("config", overrides=["data=synthetic", "datamodule.eval_order=given"])
    assert length.datamodule.eval_order == "length"
    assert config_hashes(length) == config_hashes(given), "one setting, one group"
    row = read_row(ROW)  # made before the key existed: re-run in user order
    assert "eval_order" not in row.config["datamodule"]
    sasrec = composed(["experiment=sasrec_beauty", "seed=0"])
    old = [
        "model.optimizer.fused=null",
        "loss.fused=null",
    ]  # also before the fused Adam and CE: re-run unfused
    assert rounding_overrides(row, sasrec) == ["datamodule.eval_order=given", *old]
    newer = row.model_copy(update={"config": {**row.config, "datamodule": {**row.config["datamodule"]}}})
    newer.config["datamodule"]["eval_order"] = "length"
    newer.config["model"] = {**row.config["model"], "optimizer": {**row.config["model"]["optimizer"]}}
    newer.config["model"]["optimizer"]["fused"] = True
    newer.config["loss"] = {**row.config["loss"], "fused": True}
    assert rounding_overrides(newer, sasrec) == [
        "datamodule.eval_order=length",
        "model.optimizer.fused=true",
        "loss.fused=true",
    ]
    assert rounding_overrides(row, composed(["model=ease", "seed=0"])) == [], "EASE: neither key"
    newer.config["datamodule"]["eval_order"] = "${oc.env:HOME}"
    with pytest.raises(RefusedError, match="not a plain word"):
        rounding_overrides(newer, sasrec)


@pytest.mark.parametrize("model, key", [("gru4rec", "packed"), ("caser", "images")])
def test_faster_forward_is_outside_the_hash_and_verify_pins_it(model, key):
    """GRU4Rec rows made before ``model.net.packed`` ran packed, Caser rows before ``model.net.images``
    convolved images: both keys move rounding only."""
    new = composed([f"model={model}", "data=synthetic", "seed=0"])
    old = composed([f"model={model}", "data=synthetic", "seed=0", f"model.net.{key}=true"])
    assert new.model.net[key] is False
    assert config_hashes(new) == config_hashes(old), "one setting, one group"
    row = read_row(ROW)  # its config has no such key: re-run the old way
    assert f"model.net.{key}=true" in rounding_overrides(row, new)
    assert not any(o.startswith(f"model.net.{key}") for o in rounding_overrides(row, composed(["seed=0"])))
