"""End to end: `python -m recbench.run` on synthetic data writes a valid row and predictions whose
metrics recompute to the row's, for every model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from recbench.metrics.ranking import build_metrics, compute
from recbench.results.schema import read_row
from recbench.run import run

from .conftest import CONF_DIR
from .test_configs import model_task, options


def fast_run(tmp_path: Path, *overrides: str):
    args = ["data=synthetic", "debug=fast", f"paths.output_dir={tmp_path}", *overrides]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=args)
    return run(cfg, overrides=args)


# Paper-sized TIGER costs ~10 s per training batch on a busy 2-core CPU (every prefix is its own encoder
# pass); the fast tier runs the same pipeline (text embeddings -> RQ-VAE -> T5 -> constrained beam search)
# with a smaller network and a short RQ-VAE fit. The full-size path is `python -m recbench.run model=tiger
# data=synthetic debug=fast` (minutes).
SHRINK = {
    "tiger": [
        "model.net.d_model=32",
        "model.net.num_layers=1",
        "model.net.num_heads=2",
        "model.net.d_kv=16",
        "model.net.d_ff=64",
        "tokenizer.epochs=20",
        "tokenizer.hidden=[64]",
        "tokenizer.codebook_size=16",
    ],
    "sid_gpt": [
        "model.net.hidden_size=32",
        "model.net.num_layers=1",
        "model.net.num_heads=2",
        "model.net.ffn_size=64",
        "tokenizer.epochs=20",
        "tokenizer.hidden=[64]",
        "tokenizer.codebook_size=16",
    ],
}


@pytest.mark.parametrize("model", [m for m in options("model") if model_task(m) == "next_item"])
def test_every_model_writes_a_valid_row(model, tmp_path, embedding_cache):
    row = fast_run(tmp_path, f"model={model}", f"paths.cache_dir={embedding_cache}", *SHRINK.get(model, []))
    back = read_row(tmp_path / "result.json")
    assert back.model.name == model and back.dataset.name == "synthetic"
    if back.config["model"].get("zero_shot"):  # evaluated as constructed: no epoch, nothing selected
        assert back.cost.epochs_trained == 0 and back.cost.best_epoch == 0 and back.model.n_params == 0
    else:
        assert back.cost.epochs_trained == 2 and 1 <= back.cost.best_epoch <= 2
    splits = {"val", "val_history_masked", "test", "test_history_masked"}
    sampled = {"test_sampled_uniform100", "test_sampled_popularity100"}
    if "item_codes" in (back.config["model"].get("inputs") or {}).get("module", []):  # semantic IDs:
        # + the lenient tuple-level diagnostic; beam search gives no score matrix: no sampled metrics
        splits |= {"val_tuple_level", "test_tuple_level"}
        assert back.sampled_metrics is None
    else:  # the sampled-metrics diagnostic (test only), and how it was drawn
        splits |= sampled
        info = back.sampled_metrics
        assert info is not None and info.negatives == 100 and info.replacement is False
        uniform, popularity = "test_sampled_uniform100", "test_sampled_popularity100"
        assert info.splits == {"uniform": uniform, "popularity": popularity}
        assert info.short_cases == {s: 0 for s in sampled}  # 200 items, histories under 30
        assert set(back.metrics[uniform]) == set(back.metrics[popularity]) == set(back.metrics["test"])
        # against 100 negatives instead of 199 items, the target can only rank higher
        assert back.metrics[uniform]["recall@10"] >= back.metrics["test"]["recall@10"]
    cold = {"test_cold5", "test_cold5_history_masked"}  # both or neither: where some test target is cold
    assert set(back.metrics) - cold == splits and len(cold & set(back.metrics)) in (0, 2)
    assert back.command.startswith("python -m recbench.run") and "seed=0" in back.command
    # SASRec 50, TIGER 20; CF models read the whole history (0) or none (a user embedding)
    max_history = back.config["model"]["net"].get("max_len", 0)
    assert back.protocol.mask_history is False and back.protocol.max_history == max_history
    cf = back.config["model"]["module"]["_target_"] == "recbench.lit.cf.CFModule"
    # a learned user embedding, fitted without the validation item
    embedded = {"bprmf", "lightgcn", "simgcl", "buir", "directau", "alpharec"}
    test_history = "train_only" if model in embedded else "train+valid"
    assert back.protocol.test_history == test_history and (cf or test_history == "train+valid")
    assert back.dataset.eval_users == 300 and back.dataset.item_text_coverage == 1.0  # synthetic has titles
    assert row.metrics["test"]["ndcg@10"] == pytest.approx(back.metrics["test"]["ndcg@10"], rel=1e-7)


def test_sasrec_trains_on_prefixes(tmp_path):
    """datamodule=prefix with uniformly random batches (RecBole's training regime) runs end to end."""
    fast_run(
        tmp_path,
        "model=sasrec",
        "datamodule=prefix",
        "datamodule.bucket_pool=0",
        "model.module.micro_batch=16",
    )
    back = read_row(tmp_path / "result.json")
    assert back.config["datamodule"]["bucket_pool"] == 0 and back.cost.epochs_trained == 2


@pytest.mark.parametrize("model", [m for m in options("model") if model_task(m) == "search"])
@pytest.mark.parametrize("protocol", ["esci_rerank", "esci_retrieve"])
def test_every_search_model_writes_a_valid_row(model, protocol, tmp_path, embedding_cache):
    """Search models run on the synthetic search set (data=search_synthetic) under both protocols."""
    row = fast_run(
        tmp_path,
        "data=search_synthetic",
        f"model={model}",
        f"protocol={protocol}",
        f"paths.cache_dir={embedding_cache}",
    )
    back = read_row(tmp_path / "result.json")
    assert back.search is not None and back.search.task == protocol.removeprefix("esci_")
    assert back.benchmark.name == f"esci-{back.search.task}" and back.dataset.name == "search_synthetic"
    assert set(back.metrics) == {"test"} and back.cost.best_epoch == 0
    assert back.search.gains == {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
    assert back.search.corpus_size == (80 if protocol == "esci_retrieve" else 240)
    assert "datamodule" not in back.config and back.config["benchmark"]["name"] == back.benchmark.name
    assert (back.index is not None) == (protocol == "esci_retrieve" and model != "bm25")
    assert row.metrics["test"]["ndcg@10"] > 0.5  # the synthetic queries are easy for every ranker
    # the predictions recompute to the row
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(preds) == back.search.queries
    if protocol == "esci_rerank":
        from recbench.metrics.graded import ESCI_GAINS, evaluate_rankings, mean_metrics, parse_metrics

        ranked = [np.arange(len(p)) for p in preds["product_ids"]]
        judged = [dict(enumerate(lab)) for lab in preds["labels"]]
        again = mean_metrics(evaluate_rankings(ranked, judged, parse_metrics(["ndcg"]), ESCI_GAINS))
        assert again["ndcg"] == pytest.approx(back.metrics["test"]["ndcg"], abs=1e-7)


def test_search_model_needs_search_data_and_protocol(tmp_path):
    with pytest.raises(TypeError, match="not a search dataset"):
        fast_run(tmp_path, "model=bm25", "protocol=esci_rerank")
    with pytest.raises(TypeError, match="protocol=esci_rerank or"):
        fast_run(tmp_path, "model=bm25", "data=search_synthetic")


def test_predictions_recompute_to_the_row(tmp_path):
    row = fast_run(tmp_path)
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(preds) == 300 and len(preds["top_items"][0]) == 100
    metrics = build_metrics(["recall", "ndcg", "mrr"], [5, 10, 20])
    assert compute(metrics, preds["rank"].to_numpy()) == pytest.approx(row.metrics["test"], abs=1e-12)
    masked = compute(metrics, preds["rank_history_masked"].to_numpy())
    assert masked == pytest.approx(row.metrics["test_history_masked"], abs=1e-12)
    # the top-K list agrees with the rank: a target ranked r <= 100 sits at position r
    hit = preds[preds["rank"] <= 100]
    assert all(
        items[r - 1] == t for items, r, t in zip(hit["top_items"], hit["rank"], hit["target"], strict=True)
    )


def test_masked_protocol_swaps_headline_and_diagnostic(tmp_path):
    plain = fast_run(tmp_path / "a")
    masked = fast_run(tmp_path / "b", "protocol.mask_history=true")
    assert masked.metrics["test"] == pytest.approx(plain.metrics["test_history_masked"])
    assert masked.metrics["test_history_unmasked"] == pytest.approx(plain.metrics["test"])


def test_same_seed_same_numbers(tmp_path):
    a, b = fast_run(tmp_path / "a"), fast_run(tmp_path / "b")
    assert a.metrics == b.metrics
    assert a.config_hash == b.config_hash


def test_reused_validation_pass_equals_a_fresh_one(tmp_path, monkeypatch):
    """When the selected epoch is the last one validated, its fit-time validation pass is reused; the row is
    the one a fresh validation of the restored checkpoint gives."""
    from recbench.utils.callbacks import EpochTimer

    reused = fast_run(tmp_path / "a")
    assert reused.cost.best_epoch == reused.cost.epochs_trained  # the case that reuses the pass
    monkeypatch.setattr(EpochTimer, "last_validation_is_best", lambda self: False)
    fresh = fast_run(tmp_path / "b")
    assert reused.metrics == fresh.metrics


def test_bce_loss_runs(tmp_path):
    assert fast_run(tmp_path, "loss=bce").model.loss == "SampledBCE"


def test_sasrec_learns_the_synthetic_structure(tmp_path):
    """A few epochs on the ring-walk data must beat chance (10/200 = 0.05 recall@10) by far."""
    row = fast_run(
        tmp_path, "trainer.max_epochs=8", "trainer.limit_train_batches=1.0", "model.optimizer.lr=0.005"
    )
    assert row.metrics["test"]["recall@10"] > 0.5


def test_cli_wandb_offline_writes_row(tmp_path):
    """The real entry point, with the default W&B logger in offline mode (no key present)."""
    cmd = [
        sys.executable,
        "-m",
        "recbench.run",
        "data=synthetic",
        "debug=fast",
        "logger=wandb",
        f"paths.log_dir={tmp_path}",
        f"hydra.run.dir={tmp_path}/run",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.loads((tmp_path / "run/result.json").read_text())
    assert row["wandb"]["mode"] == "offline" and Path(row["wandb"]["dir"]).is_dir()
    assert "wandb sync" in out.stderr + out.stdout
    assert "data=synthetic" in row["command"]
    text = (tmp_path / "run/result.json").read_text()
    assert "WANDB_API_KEY" not in text and "api_key" not in text
    assert np.isfinite(row["metrics"]["test"]["ndcg@10"])


def test_tiger_with_random_ids_and_tuple_diagnostic(tmp_path):
    """The ablation path (tokenizer=random) and the item-level vs tuple-level diagnostic: with colliding
    tuples the lenient tuple-level numbers can only be higher."""
    row = fast_run(
        tmp_path, "model=tiger", "tokenizer=random", "tokenizer.codebook_size=4", *SHRINK["tiger"][:5]
    )
    assert row.item_tokenizer is not None and row.item_tokenizer["collision_rate"] > 0.5
    assert row.model.tokenizer == "random"
    for key, value in row.metrics["test"].items():
        assert row.metrics["test_tuple_level"][key] >= value
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    tops = np.stack(preds["top_items"].to_numpy())
    assert tops.shape == (300, 20) and all(len(set(r[r >= 0])) == len(r[r >= 0]) for r in tops)
    assert compute(build_metrics(["recall", "ndcg", "mrr"], [5, 10, 20]), preds["rank"].to_numpy()) == (
        pytest.approx(row.metrics["test"], abs=1e-12)
    )


@pytest.mark.parametrize("into", ["cut", "resumed"])
def test_resumed_run_reports_the_whole_run(tmp_path, into):
    """resume_from continues the epoch history and the clock: the row equals an uninterrupted run's,
    whether the resumed run writes to the first run's folder or (as every CLI run does) its own."""
    whole = fast_run(tmp_path / "whole", "trainer.max_epochs=3", "callbacks.early_stopping.patience=10")
    fast_run(tmp_path / "cut", "trainer.max_epochs=2", "callbacks.early_stopping.patience=10")
    ckpt = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    resumed = fast_run(
        tmp_path / into,
        "trainer.max_epochs=3",
        "callbacks.early_stopping.patience=10",
        f"+resume_from={ckpt}",
    )
    assert resumed.cost.epochs_trained == whole.cost.epochs_trained == 3
    assert resumed.cost.best_epoch == whole.cost.best_epoch
    assert resumed.metrics == whole.metrics
    assert resumed.cost.train_seconds >= resumed.cost.train_seconds_to_best > 0


def test_last_checkpoint_saves_the_selection_of_its_own_epoch_and_rows_never_mix_epochs(tmp_path):
    """last.ckpt is written after the monitored checkpoint has taken in its epoch: a resume from it must
    know that epoch's best, or it could select (and test) a worse later epoch. One epoch: it is the best.
    check_selected refuses a checkpoint that does not hold the selected epoch."""
    import torch

    from recbench.utils.callbacks import check_selected

    fast_run(tmp_path, "trainer.max_epochs=1")
    ckpts = tmp_path / "checkpoints"
    states = torch.load(ckpts / "last.ckpt", weights_only=False)["callbacks"]
    (selecting,) = [s for k, s in states.items() if k.startswith("ModelCheckpoint{'monitor': 'val/ndcg@10'")]
    assert selecting["best_model_path"] == str(ckpts / "best-epoch001.ckpt")
    check_selected(str(ckpts / "best-epoch001.ckpt"), 1)
    with pytest.raises(RuntimeError, match="holds epoch 1, but validation selected epoch 2"):
        check_selected(str(ckpts / "best-epoch001.ckpt"), 2)
    with pytest.raises(FileNotFoundError, match="is gone"):
        check_selected(str(tmp_path / "nothing.ckpt"), 1)


def test_resume_into_a_new_folder_keeps_the_selection(tmp_path):
    """last.ckpt is written every epoch (a resume loses no epoch), while the test split is scored with the
    epoch selected on validation. A resumed run writes to its own folder; the best epoch chosen before the
    break stays chosen (and is the one tested) when no later epoch beats it. lr 0: every epoch validates
    the same, so the first one is the best."""
    import torch

    fixed = ("trainer.max_epochs=3", "callbacks.early_stopping.patience=10", "model.optimizer.lr=0")
    whole = fast_run(tmp_path / "whole", *fixed)
    ckpts = tmp_path / "whole" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best-epoch001.ckpt", "last.ckpt"]
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["epoch"] == 2
    assert whole.cost.epochs_trained == 3
    fast_run(tmp_path / "cut", *fixed[1:], "trainer.max_epochs=2")
    resumed = fast_run(tmp_path / "resumed", *fixed, f"+resume_from={tmp_path / 'cut/checkpoints/last.ckpt'}")
    assert not list((tmp_path / "resumed" / "checkpoints").glob("best-*"))  # epoch 1 (in cut/) stays best
    assert resumed.cost.best_epoch == whole.cost.best_epoch == 1
    assert resumed.metrics == whole.metrics


def test_validating_every_other_epoch_reports_real_epochs(tmp_path):
    """check_val_every_n_epoch 2: the selected epoch is a validated one (2 or 4), the tested checkpoint
    holds it, and the row counts every trained epoch."""
    row = fast_run(
        tmp_path,
        "trainer.max_epochs=4",
        "trainer.check_val_every_n_epoch=2",
        "callbacks.early_stopping.patience=10",
    )
    assert row.cost.epochs_trained == 4 and row.cost.best_epoch in (2, 4)
    assert row.cost.train_seconds >= row.cost.train_seconds_to_best > 0


def test_training_estimate_logs_the_time_per_step_and_warns_past_the_budget(tmp_path, caplog):
    """After a few steps: one line with s/step and the estimates; on a CPU past warn_hours, a warning that
    names a GPU, a budget that fits and a smaller model. The estimate changes no hash."""
    import logging

    caplog.set_level(logging.INFO, logger="recbench.utils.callbacks")
    knobs = ("callbacks.training_estimate.after_steps=1", "callbacks.training_estimate.warn_hours=1e-9")
    row = fast_run(tmp_path / "warned", *knobs)
    lines = [r.getMessage() for r in caplog.records if r.name == "recbench.utils.callbacks"]
    estimate = [m for m in lines if m.startswith("training: ") and " s per step, 3 steps per epoch" in m]
    assert len(estimate) == 1 and "to max_epochs=2" in estimate[0]
    warning = [m for m in lines if m.startswith("training to max_epochs=2 would take")]
    assert len(warning) == 1 and "`trainer=gpu`" in warning[0] and "`trainer.max_steps=" in warning[0]
    plain = fast_run(tmp_path / "plain")
    assert plain.setting_hash == row.setting_hash


NOISE = (
    "LeafSpec",  # Lightning's deprecation notice
    "litlogger",  # Lightning's tip
    "anonymous setting has no effect",  # wandb
    "IterableDataset",  # the num_workers hint with num_workers 0
    "log_every_n_steps",
    "swigfaiss",  # faiss's loader
    "┏",  # Lightning's test table (18-digit floats): the summary shows the metrics
    "INFO: ",  # a Lightning line printed a second time by its own handler
    "FLOPs",  # Lightning's summary column, 0 without an example input: ModelSize says what matters
    "ModelSummary",  # Lightning's note that ModelSize replaces its summary
)


def test_a_tiny_run_prints_none_of_the_known_noise(tmp_path):
    cmd = [sys.executable, "-m", "recbench.run", "data=synthetic", "debug=fast", "logger=wandb",
           "model=text_zeroshot", f"paths.log_dir={tmp_path}"]  # fmt: skip
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr[-3000:]
    out = text.stdout + text.stderr
    assert [n for n in NOISE if n in out] == [] and "row: " in out
    cmd[cmd.index("model=text_zeroshot")] = "model=sasrec"
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = text.stdout + text.stderr
    assert text.returncode == 0 and [n for n in NOISE if n in out] == []
    assert out.count("GPU available") == 1
    assert "model: net SASRec " in out and " parameters (" in out  # the summary, one line


def test_progress_lines_give_the_count_the_total_and_the_time_left(caplog):
    import logging

    from recbench.utils.progress import Progress, duration

    caplog.set_level(logging.INFO)
    p = Progress(logging.getLogger("t"), "fit", total=3, unit="epoch", every_seconds=0.0)
    for _ in range(3):
        p.update(note="loss 1")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "fit: 3 epochs to go"
    assert lines[1].startswith("fit: epoch 1/3 (33%), ") and "left · loss 1" in lines[1]
    assert lines[-1].startswith("fit: epoch 3/3 (100%)") and "done" in lines[-1]
    assert [duration(s) for s in (5, 600, 9000)] == ["5 s", "10 min", "2.5 h"]


def test_epochs_count_from_one_in_the_bar_and_the_checkpoint_names(tmp_path):
    from types import SimpleNamespace

    import torch
    from omegaconf import open_dict

    from recbench.results.builder import config_hashes
    from recbench.utils.callbacks import EpochCheckpoint, progress_bar

    bar = progress_bar()
    bar._trainer = SimpleNamespace(max_epochs=200)
    assert bar._get_train_description(0).strip() == "Epoch 1/200"
    name = EpochCheckpoint(filename="best-epoch{epoch:03d}", auto_insert_metric_name=False)
    assert name.format_checkpoint_name({"epoch": torch.tensor(0)}) == "best-epoch001.ckpt"
    assert name.state_key.startswith("ModelCheckpoint{")  # older checkpoints resume into it
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=synthetic", f"paths.output_dir={tmp_path}"])
    before = config_hashes(cfg)
    with open_dict(cfg):
        cfg.callbacks.model_checkpoint._target_ = "lightning.pytorch.callbacks.ModelCheckpoint"
    assert config_hashes(cfg) == before  # rows made with Lightning's class keep their setting hash


def test_unisrec_is_the_inductive_moe_setting_and_counts_no_id_table(tmp_path, embedding_cache):
    """model=unisrec: text only through the whitening mixture of experts, cosine / 0.07. Its parameters
    are sasrec_text's (same Transformer) less the per-item table and the linear projection, plus the
    adaptor's 8 experts (shift and map each) and gate, over 384-d MiniLM vectors into 64 dimensions."""
    uni = fast_run(tmp_path / "uni", "model=unisrec", f"paths.cache_dir={embedding_cache}")
    net = uni.config["model"]["net"]
    assert (net["mode"], net["adaptor"], net["similarity"], net["temperature"]) == (
        "text_only",
        "moe",
        "cosine",
        0.07,
    )
    fused = fast_run(tmp_path / "fused", "model=sasrec_text", f"paths.cache_dir={embedding_cache}")
    t, d, k, items = 384, 64, 8, uni.dataset.items
    moe = k * t + k * t * d + t * k
    assert uni.model.n_params == fused.model.n_params - (items + 1) * d - t * d + moe
    assert uni.cost.epochs_trained == 2


def test_compile_runs_the_same_setting_and_checks_its_value(tmp_path, monkeypatch):
    """``compile=true`` compiles each network's forward in place (here with Dynamo's eager backend, so the
    test spends no time in code generation): same numbers, same setting hash, same checkpoint keys; a
    value that is not a mode is refused before any data is read."""
    import torch

    from recbench.utils.config_check import ConfigError

    compiled: list[str] = []
    plain_compile = torch.nn.Module.compile

    def eager_compile(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        plain_compile(self, *args, **kwargs, backend="eager")

    plain = fast_run(tmp_path / "plain")
    monkeypatch.setattr(torch.nn.Module, "compile", eager_compile)
    fast = fast_run(tmp_path / "compiled", "compile=true")
    assert compiled == ["SASRec"]
    assert fast.metrics == plain.metrics
    assert fast.setting_hash == plain.setting_hash
    with pytest.raises(ConfigError, match="compile='fastest'"):
        fast_run(tmp_path / "bad", "compile=fastest")


@pytest.mark.parametrize("model", ["sasrec", "multvae", "lightgcn"])
def test_fused_adam_is_the_same_update_up_to_rounding(tmp_path, model):
    """Model files ask for Adam's fused kernel (``model.optimizer.fused``, rounding-only): the loop it
    replaced reaches the same validation numbers up to float rounding, in the same setting group."""
    fused = fast_run(tmp_path / "fused", f"model={model}")
    loop = fast_run(tmp_path / "loop", f"model={model}", "model.optimizer.fused=null")
    assert fused.config["model"]["optimizer"]["fused"] is True
    assert fused.setting_hash == loop.setting_hash
    for key, value in loop.metrics["val"].items():
        assert fused.metrics["val"][key] == pytest.approx(value, abs=0.01), key
