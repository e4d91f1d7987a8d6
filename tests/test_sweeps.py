"""Multirun for real: Optuna (resumable sqlite study, best trial exported), joblib, submitit_local."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir

from .conftest import CONF_DIR


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "recbench.run", *args], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def rows(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("result.json"))]


def test_optuna_study_resumes_and_exports_the_best_trial(tmp_path):
    db = tmp_path / "not-yet" / "study.db"  # the folder is created for the sweeper
    args = [
        "-m",
        "hparams_search=sasrec_optuna",
        "data=synthetic",
        "debug=fast",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage=sqlite:///{db}",
        f"hydra.callbacks.export_best.directory={tmp_path}/exp",
        f"paths.log_dir={tmp_path}/logs",
        "trainer.max_epochs=1",
    ]
    first = cli(*args)
    cli(*args)  # same storage + study name: resumes, adding two more trials
    import optuna

    study = optuna.load_study(study_name="sasrec_synthetic", storage=f"sqlite:///{db}")
    assert len(study.trials) == 4
    exported = tmp_path / "exp/sasrec_synthetic_best.yaml"
    text = exported.read_text()
    assert text.startswith("# @package _global_") and "validation only" in text
    body = yaml.safe_load(text)
    assert body["defaults"] == [{"override /data": "synthetic"}, {"override /debug": "fast"}]
    assert set(body["model"]["net"]) == {"dropout", "attn_dropout", "num_layers", "positions", "norm"}
    assert "best trial" in first.stdout
    # every trial's objective is a validation number, and each wrote its own row
    assert all("val" in r["metrics"] for r in rows(tmp_path / "logs"))
    assert len(rows(tmp_path / "logs")) == 4


def test_joblib_parallel_jobs_write_their_own_rows(tmp_path):
    cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "data=synthetic",
        "debug=fast",
        "seed=0,1",
        "logger=none",
        f"hydra.sweep.dir={tmp_path}",
    )
    found = rows(tmp_path)
    assert sorted(r["seed"] for r in found) == [0, 1]
    assert len({r["config_hash"] for r in found}) == 2 and len({r["setting_hash"] for r in found}) == 1
    summary = (tmp_path / "summary.md").read_text()  # the sweep's table, seeds pooled: one setting
    table = [line for line in summary.splitlines() if line.startswith("| ")]
    assert len(table) == 2 and " | 2 | " in table[1] and " ± " in table[1]


def test_sweep_summary_pools_seeds_and_orders_settings_by_validation(tmp_path):
    from recbench.utils.hydra_callbacks import sweep_summary

    committed = Path(__file__).resolve().parents[1] / "leaderboards/results/seqrec-loo-full/amazon_beauty"
    seeds = [json.loads(p.read_text()) for p in sorted((committed / "bprmf").glob("seed*.json"))]
    assert len(seeds) == 3 and len({r["setting_hash"] for r in seeds}) == 1
    other = dict(seeds[0], setting_hash="other", command=seeds[0]["command"] + " model.net.embedding_size=8")
    other["metrics"] = {"val": {"ndcg@10": 0.5}, "test": {"recall@10": 0.25, "ndcg@10": 0.125}}
    for i, r in enumerate([*seeds, other]):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "result.json").write_text(json.dumps(r))
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "FAILED.json").write_text("{}")
    lines = sweep_summary(tmp_path).splitlines()
    assert lines[2].startswith(
        "| amazon_beauty | model.net.embedding_size=8 | 1 | 0.5000 | 0.2500 | 0.1250 |"
    )
    test_n10 = [r["metrics"]["test"]["ndcg@10"] for r in seeds]
    import statistics

    mean, std = statistics.fmean(test_n10), statistics.stdev(test_n10)
    assert lines[3].startswith("| amazon_beauty | bprmf | 3 |") and f"{mean:.4f} ± {std:.4f}" in lines[3]
    assert "--select-on-validation" in lines[-2] and lines[-1].startswith("Failed") and "4" in lines[-1]


def test_submitit_local_runs_and_slurm_preset_composes(tmp_path):
    cli(
        "-m",
        "hydra/launcher=submitit_local",
        "data=synthetic",
        "debug=fast",
        "logger=none",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.launcher.timeout_min=10",
    )
    assert len(rows(tmp_path)) == 1
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1
