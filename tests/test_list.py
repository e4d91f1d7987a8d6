"""`recbench list` and the `recbench` command: what there is to run, one line each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recbench.cli import main as recbench
from recbench.list import KINDS, first_sentence, listing

from .conftest import CONF_DIR


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_config_is_listed_with_a_summary(kind):
    files = sorted((Path(CONF_DIR) / KINDS[kind]).glob("*.yaml"))
    lines = listing(kind)
    assert [line.split()[0] for line in lines] == [f.stem for f in files]
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # a name and its summary


def test_the_summary_is_the_first_sentence():
    assert first_sentence("EASE (Steck et al. 2019). More.") == "EASE (Steck et al. 2019)"
    assert first_sentence("Pop; the floor. Rest") == "Pop"
    assert first_sentence("No end") == "No end"


def test_the_recbench_command_dispatches_and_suggests(capsys):
    assert recbench(["list", "models"]) == 0
    assert "sasrec" in capsys.readouterr().out
    assert recbench(["lst"]) == 2
    assert "did you mean `recbench list`?" in capsys.readouterr().err
    assert recbench([]) == 0 and "commands:" in capsys.readouterr().out


def test_recbench_run_finds_the_configs_from_outside_run_py(tmp_path):
    """Hydra resolves a relative config path against the calling module; `recbench run` (a console
    script) calls run.py from elsewhere, so the config path is absolute."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "recbench.cli", "run", "data=synthetic", "debug=fast", "logger=none",
           f"hydra.run.dir={tmp_path}/run", f"paths.log_dir={tmp_path}"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "result.json").is_file()


def test_commands_that_answer_at_once_load_no_torch():
    """--help, config errors and listings must not pay for torch and Lightning (~10 s on 2 cores)."""
    import subprocess
    import sys

    code = (
        "import sys, recbench.run, recbench.leaderboard.__main__, recbench.list, recbench.cli; "
        "print(sorted(m for m in ('torch', 'lightning', 'scipy', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_run_help_lists_every_group_and_option_without_hydra():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "recbench.run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m recbench.run")
    for group in ("model", "data", "loss", "experiment", "trainer"):
        options = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
        section = re.split(r"\n(?:  )?\S", out.stdout.split(f"\n  {group}:", 1)[1], maxsplit=1)[0]
        assert [o.strip() for o in " ".join(section.split()).split(",")] == options
