"""Config errors come before any work, name the key and the value, and suggest the key that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from recbench.errors import ConfigError
from recbench.utils.config_check import check_command_line, check_values, command_line_overrides

from .conftest import CONF_DIR

CONF = Path(CONF_DIR)


def check(*argv: str) -> None:
    check_command_line(["data=synthetic", *argv], CONF)


def test_the_command_line_is_read_as_hydra_reads_it():
    argv = ["-m", "model=ease", "--cfg", "job", "model.net.l2=1,2", "-p", "model", "seed=1"]
    assert command_line_overrides(argv) == ["model=ease", "model.net.l2=1,2", "seed=1"]
    assert command_line_overrides(["--help", "seed=1"]) is None  # help and other configs: Hydra alone
    assert command_line_overrides(["-cn", "other", "seed=1"]) is None


def test_an_unknown_key_gets_the_closest_keys_and_no_append_advice():
    with pytest.raises(ConfigError) as e:
        check("model.net.hiden=64")
    message = str(e.value)
    assert "model.net.hiden=64" in message and "did you mean model.net.hidden_size?" in message
    assert "model=sasrec" in message and "+model" not in message
    with pytest.raises(ConfigError, match=re.escape("did you mean model.net?")):
        check("model.nett.x=1")


def test_each_model_of_a_group_sweep_is_checked():
    with pytest.raises(ConfigError, match=re.escape("model=bprmf has no key model.net.num_layers")):
        check("-m", "model=lightgcn,bprmf", "model.net.num_layers=2")


def test_a_value_of_the_wrong_kind_names_the_key_and_its_default():
    with pytest.raises(
        ConfigError, match=re.escape("trainer.max_epochs expects a number (its default is 200)")
    ):
        check("trainer.max_epochs=abc")
    with pytest.raises(ConfigError, match=re.escape("expects true or false")):
        check("save_predictions=3")


def test_values_out_of_range_are_refused_also_inside_a_sweep():
    with pytest.raises(ConfigError, match=re.escape("trainer.max_epochs=1.5: expected an integer >= -1")):
        check("trainer.max_epochs=1.5")
    with pytest.raises(ConfigError, match=re.escape("lr=-0.1: expected a number in [0, inf)")):
        check("-m", "model.optimizer.lr=0.1,-0.1")
    with pytest.raises(ConfigError, match=re.escape("model.net.dropout=1.5: expected a number in [0, 1)")):
        check("model.net.dropout=1.5")


def test_good_command_lines_pass():
    check("-m", "model=ease", "model.net.l2=200,500", "hydra.sweep.dir=x", "seed=0,1")
    check("model=directau", "loss.gamma=0.5", "+trainer.limit_val_batches=2", "torch_threads=null")
    check("experiment=sasrec_beauty", "trainer.max_epochs=3", "seed=range(0,3)")
    check("trainer.devices=auto", "trainer.precision=bf16-mixed")  # Lightning takes several kinds


def test_values_set_by_a_config_file_are_checked_too(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=synthetic", f"paths.output_dir={tmp_path}"])
    cfg.callbacks.early_stopping.patience = -2  # as an experiment file could set it
    with pytest.raises(
        ConfigError, match=re.escape("callbacks.early_stopping.patience=-2: expected an integer >= 0")
    ):
        check_values(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+trainer.limit_val_batches=0"], "trainer.limit_val_batches=0 turns validation off"),
        (["+trainer.limit_val_batches=0.0"], "trainer.limit_val_batches=0.0 turns validation off"),
        (
            ["trainer.max_epochs=2", "trainer.check_val_every_n_epoch=3"],
            "trainer.check_val_every_n_epoch=3 with trainer.max_epochs=2: no epoch would be validated",
        ),
    ],
)
def test_a_run_that_would_never_validate_is_refused(tmp_path, overrides, message):
    """Refused up front, pointing at the supported way to time a few steps, rather than stopped by
    Lightning's early stopping at the end of the first epoch."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=synthetic", f"paths.output_dir={tmp_path}", *overrides])
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        check_values(cfg)
    assert "+trainer.max_steps=N" in str(refused.value)


def test_partial_validation_and_step_caps_pass(tmp_path):
    unbounded = ["trainer.max_epochs=-1", "trainer.check_val_every_n_epoch=5"]
    for overrides in (["+trainer.limit_val_batches=2"], ["+trainer.limit_val_batches=0.5"],
                      ["+trainer.max_steps=3"], unbounded):  # fmt: skip
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=["data=synthetic", f"paths.output_dir={tmp_path}", *overrides])
        check_values(cfg)


def test_the_entry_point_refuses_before_any_work(tmp_path):
    """No data read, no run folder, no traceback: one line naming the key, in about a second."""
    cmd = [sys.executable, "-m", "recbench.run", "data=synthetic", "trainer.max_epochs=abc",
           f"paths.log_dir={tmp_path}"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=CONF.parent)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: trainer.max_epochs=abc")
    assert "Traceback" not in out.stderr and not any(tmp_path.iterdir())


def test_missing_local_data_is_refused_before_any_work(tmp_path):
    """Files a source only reads (no download): the error names them and the command that fetches the
    official ones, from the command line, with no run folder left behind."""
    cmd = [sys.executable, "-m", "recbench.run", "data=amazon_toys", f"paths.data_dir={tmp_path}/none",
           f"paths.log_dir={tmp_path}/logs"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "error: dataset 'amazon_toys': expected files are missing" in out.stderr
    assert "python -m recbench.run data=amazon_toys_raw allow_unverified=true" in out.stderr
    assert not (tmp_path / "logs").exists()
