"""Every option of every config group composes, and the parts it names instantiate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import LeaveOneOut
from recbench.inputs import RunContext, model_inputs
from recbench.tokenizers.random_ids import RandomIdTokenizer
from recbench.utils.config_check import check_values
from recbench.utils.instantiate import instantiate

from .conftest import CONF_DIR

GROUPS = [
    "data",
    "protocol",
    "tokenizer",
    "encoder",
    "model",
    "loss",
    "metrics",
    "datamodule",
    "trainer",
    "callbacks",
    "logger",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def compose_cfg(overrides: list[str], out: Path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=[*overrides, f"paths.output_dir={out}", f"paths.log_dir={out}"])


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in [*GROUPS, "debug", "experiment"] for o in options(g)]
)
def test_every_option_composes(group, option, tmp_path):
    cfg = compose_cfg([f"{group}={option}"], tmp_path)
    assert cfg.model.name and cfg.data.name
    check_values(cfg)  # every shipped setting passes the checks a user's values get


def model_task(option: str) -> str:
    """Each model config declares its task (``model.task``); next_item when it does not."""
    cfg = OmegaConf.load(Path(CONF_DIR) / "model" / f"{option}.yaml")
    return str(cfg.get("task", "next_item"))


@pytest.mark.parametrize("option", options("model"))
def test_every_model_instantiates(option, tmp_path, embedding_cache):
    cfg = compose_cfg([f"model={option}", f"paths.cache_dir={embedding_cache}"], tmp_path)
    if model_task(option) == "search":  # a ranker: no net, no optimizer
        assert hasattr(instantiate(cfg.model.ranker), "retrieve")
        return
    # The runtime inputs the config names, built as run.py builds them, from a tiny dataset with text and
    # random semantic IDs standing in for a fitted tokenizer.
    items = [f"i{i}" for i in range(50)]
    text = pd.DataFrame({"title": [f"item {i}" for i in range(50)]}, index=items)
    dataset = SequenceDataset.from_sequences("t", [("u", items), ("v", items[::-1])], item_text=text)
    split = LeaveOneOut().split(dataset)
    context = RunContext(dataset, split, RandomIdTokenizer(codebook_size=8).fit(dataset))
    inputs, recipe_inputs = model_inputs(cfg.model, context)
    net = instantiate(cfg.model.net)(**inputs)
    module = instantiate(cfg.model.module)(
        net=net,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.model.optimizer),
        metrics=instantiate(cfg.metrics),
        mask_history=False,
        **recipe_inputs,
    )
    if cfg.model.get("zero_shot"):
        assert module.configure_optimizers() is None and not list(module.parameters())
    else:
        assert module.configure_optimizers() is not None


def test_search_data_configs_compose(tmp_path):
    for option in ("esci_us_150", "esci_us_small_test", "search_synthetic"):
        cfg = compose_cfg([f"data={option}", "model=bm25", "protocol=esci_rerank"], tmp_path)
        assert cfg.data.name == option and cfg.model.task == "search"


@pytest.mark.parametrize("group", ["loss", "metrics", "protocol", "tokenizer", "trainer"])
def test_every_simple_component_instantiates(group, tmp_path):
    for option in options(group):
        if group == "trainer" and option == "gpu" and not torch.cuda.is_available():
            continue  # composed above; instantiated in the gpu tier (test_gpu_trainer_instantiates)
        cfg = compose_cfg([f"{group}={option}"], tmp_path)
        assert instantiate(cfg[group]) is not None, f"{group}={option}"


def test_callbacks_and_loggers_instantiate(tmp_path):
    for option in options("logger"):
        cfg = compose_cfg(
            [f"logger={option}", "logger.mode=offline"] if option == "wandb" else [f"logger={option}"],
            tmp_path,
        )
        if cfg.logger:
            assert instantiate(cfg.logger) is not None
    cfg = compose_cfg([], tmp_path)
    assert all(instantiate(c) is not None for c in cfg.callbacks.values())


def test_synthetic_data_config_loads(tmp_path):
    cfg = compose_cfg(["data=synthetic"], tmp_path)
    ds = instantiate(cfg.data)
    assert ds.num_users == 300 and ds.num_items == 200


@pytest.mark.gpu
def test_gpu_trainer_instantiates(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    assert instantiate(compose_cfg(["trainer=gpu"], tmp_path).trainer) is not None


def test_experiment_files_override_top_level_keys(tmp_path):
    cfg = compose_cfg(["experiment=sasrec_beauty"], tmp_path)
    assert cfg.label == "sasrec_ce" and cfg.experiment_name == "sasrec_beauty"
    assert cfg.model.net.dropout == 0.2 and cfg.data.name == "amazon_beauty"
