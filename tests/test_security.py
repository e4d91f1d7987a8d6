"""No code execution from rows, overrides or configs: verify's override check and the target allowlist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recbench.errors import ConfigError, RefusedError
from recbench.leaderboard.__main__ import main as leaderboard_main
from recbench.leaderboard.verify import check_composition, safe_overrides
from recbench.results.schema import read_row, write_row
from recbench.utils.instantiate import check_targets, instantiate, targets

from .conftest import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
# A committed row (SASRec on Beauty): its checks run before anything is re-run, so no data is needed.
ROW = next((ROOT / "leaderboards/results/seqrec-loo-full/amazon_beauty/sasrec_ce").glob("seed0-*.json"))


def crafted(tmp_path: Path, *extra: str) -> Path:
    row = read_row(ROW)
    path = tmp_path / "row.json"
    write_row(row.model_copy(update={"command": " ".join([row.command, *extra])}), path)
    return path


@pytest.fixture
def no_rerun(monkeypatch):
    """verify must refuse before it starts any process."""

    real = subprocess.run

    def refuse(cmd, *args, **kwargs):
        if "recbench.run" in cmd:
            raise AssertionError(f"verify started a run: {cmd}")
        return real(cmd, *args, **kwargs)  # git rev-parse …

    monkeypatch.setattr(subprocess, "run", refuse)


def test_the_committed_row_passes_the_checks():
    row = read_row(ROW)
    kept = safe_overrides(row)
    assert kept == ["experiment=sasrec_beauty", "seed=0", "torch_threads=1"]
    check_composition(row, kept)


@pytest.mark.parametrize(
    "token,why",
    [
        ("+callbacks.p._target_=shutil.copyfile", "adds a key"),
        ("++model.net.hidden=3", "adds a key"),
        ("callbacks.model_checkpoint._target_=builtins.open", "special key"),
        ("model.net._partial_=false", "special key"),
        ("model.net={_target_:builtins.open}", "special key"),
        ("loss=[{_target_:shutil.rmtree}]", "special key"),
        ("hydra.callbacks.x=1", "Hydra itself"),
        ("hydra/launcher=joblib", "Hydra itself"),
        ("--config-dir=/tmp/evil", "flags"),
        ("-cd", "flags"),
        ("--experimental-rerun=/tmp/config.pickle", "flags"),
        ("model=not_a_model", "names no file conf/model/not_a_model.yaml"),
        ("model=../../tests/evil", "names no file"),
        ("data@foo=amazon_beauty", "package"),
        ("seed=0,1", "sweep"),
        ("trainer.max_epochs=range(1,3)", "sweep"),
        ("label=${oc.env:HOME}", "interpolation"),
        ("trainer.max_epochs=3", "the row's config records 200"),
        ("trainer.no_such_key=3", "does not have"),
        ("~model.net.hidden_size", "deletes model.net.hidden_size"),
        ("model.net.hidden_size=", "row's config records 64"),
        ("'not an override'", "not a valid override"),
    ],
)
def test_verify_refuses_crafted_rows(token, why, tmp_path, no_rerun):
    row = read_row(crafted(tmp_path, token))
    with pytest.raises(RefusedError, match=why) as e:
        safe_overrides(row)
    assert repr(token.strip("'"))[1:-1] in str(e.value)


def test_verify_cli_refuses_a_file_copying_row(tmp_path, no_rerun, capsys):
    dst = tmp_path / "copied"
    row = crafted(
        tmp_path,
        "+callbacks.p._target_=shutil.copyfile",
        f"+callbacks.p.src={ROW}",
        f"+callbacks.p.dst={dst}",
    )
    assert leaderboard_main(["verify", str(row)]) == 1
    err = capsys.readouterr().err
    assert "+callbacks.p._target_=shutil.copyfile" in err and "adds a key" in err
    assert not dst.exists()


def test_verify_refuses_a_row_whose_command_is_not_its_config(tmp_path, no_rerun):
    """The command must compose the config the row records: a row whose config was edited to agree with a
    changed command still fails on the hash."""
    row = read_row(ROW)
    config = {**row.config, "trainer": {**row.config["trainer"], "max_epochs": 3}}
    edited = row.model_copy(update={"command": row.command + " trainer.max_epochs=3", "config": config})
    with pytest.raises(RefusedError, match="not the setting that produced the row"):
        check_composition(edited, safe_overrides(edited))


def conf_files() -> list[Path]:
    return sorted(Path(CONF_DIR).rglob("*.yaml"))


def test_every_committed_target_is_allowed():
    seen = 0
    for path in conf_files():
        for key, target in targets(yaml.safe_load(path.read_text()) or {}):
            if "${" not in str(target):
                from recbench.utils.instantiate import check_target

                check_target(target, f"{path.relative_to(CONF_DIR)}:{key}")
                seen += 1
    assert seen >= 40


@pytest.mark.parametrize(
    "target",
    [
        "builtins.open",
        "shutil.copyfile",
        "torch.save",
        "torch.load",
        "os.system",
        "recbench.data.dataset.shutil.copyfile",  # under recbench. by name, shutil's by identity
        "recbench.data.dataset.np.load",
        "recbench.leaderboard.verify.subprocess.run",
        "recbench.results.schema.atomic_write_text",  # ours, but a function that writes any file
        "lightning.pytorch.cli.LightningCLI",  # parses argv and instantiates whatever it names
    ],
)
def test_instantiate_refuses_targets_outside_the_allowlist(target, tmp_path):
    config = {"_target_": target, "_args_": [str(tmp_path / "a"), str(tmp_path / "b")]}
    with pytest.raises(RefusedError, match=r"recbench/utils/instantiate\.py"):
        instantiate(config)
    nested = {"_target_": "torch.optim.Adam", "_partial_": True, "params": {"_target_": target}}
    with pytest.raises(RefusedError, match=r"params\._target_"):
        instantiate(nested)
    assert not (tmp_path / "b").exists()


def test_instantiate_names_the_key_of_a_bad_keyword():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"model": {"net": {"_target_": "recbench.models.sasrec.SASRec", "hiden": 3}}})
    with pytest.raises(ConfigError, match=r"^model\.net: .*unexpected keyword argument 'hiden'"):
        instantiate(cfg.model.net, num_items=5)


def test_check_targets_walks_lists_and_interpolations():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"evil": {"_target_": "builtins.open"}, "a": {"b": ["x", "${evil}"]}})
    keys = [k for k, _ in targets(cfg.a, "a")]
    assert keys == ["a.b[1]"]
    with pytest.raises(RefusedError, match=r"a\.b\[1\]"):
        check_targets(cfg.a)


def test_run_refuses_a_command_line_target_with_a_readable_error(tmp_path):
    """``_target_`` from the command line: refused before any data is read, printed without a traceback."""
    dst = tmp_path / "copied"
    env = {**os.environ, "RECBENCH_LOG_DIR": str(tmp_path), "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recbench.run",
            "data=synthetic",
            "debug=fast",
            "logger=none",
            "+callbacks.p._target_=shutil.copyfile",
            f"+callbacks.p.src={ROW}",
            f"+callbacks.p.dst={dst}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "error: callbacks.p._target_='shutil.copyfile' is not allowed" in out.stderr
    assert "Traceback" not in out.stderr
    assert not dst.exists()


def test_the_security_floors_are_pinned_and_hold():
    """pyproject.toml's floors are those the checks rely on, and the installed versions meet them."""
    import tomllib
    from importlib.metadata import version

    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate
    from packaging.version import Version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch>=2.6" in deps and "hydra-core>=1.3.4,<1.4" in deps
    assert Version(version("torch").split("+")[0]) >= Version("2.6")
    assert Version(version("hydra-core")) >= Version("1.3.4")
    with pytest.raises(InstantiationException, match="blocklisted"):  # Hydra's own list, beneath ours
        hydra_instantiate({"_target_": "os.system", "_args_": ["true"]})
