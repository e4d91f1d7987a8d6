"""The Makefile's repro targets: every model, experiment and tokenizer they run exists in conf/ (a rename
there would otherwise surface hours into a run)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"model": "model", "experiment": "experiment", "tokenizer": "tokenizer", "encoder": "encoder"}

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, *variables: str) -> str:
    done = subprocess.run(
        ["make", "-n", target, *variables], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def named(commands: str, group: str) -> set[str]:
    """The options of ``group`` the commands choose: ``group=a,b`` or ``group=$$var`` over a for-list."""
    found = set()
    for value in re.findall(rf"(?<![.\w]){group}=(\S+)", commands):
        if value.startswith("$"):
            continue  # a shell loop variable: its list is checked below
        found.update(value.split(","))
    for loop_var, values in re.findall(r"for (\w+) in ([^;]+);", commands):
        if re.search(rf"(?<![.\w]){group}=\${loop_var}\b", commands):
            found.update(values.split())
    return found


@pytest.mark.parametrize(
    ("target", "variables"),
    [
        ("repro", ()),
        ("repro-cf", ()),
        ("repro-seq", ("DATA=amazon_sports",)),
        ("repro-seq", ("DATA=ml_1m",)),
        ("repro-sid", ("DATA=amazon_toys",)),
        ("repro-text-models", ("DATA=ml_1m",)),
        ("repro-tokenizers", ()),
        ("repro-generative", ()),
    ],
)
def test_repro_targets_name_existing_configs(target, variables):
    commands = dry_run(target, *variables)
    chosen = 0
    for group, folder in GROUPS.items():
        for option in named(commands, group):
            chosen += 1
            assert (ROOT / "conf" / folder / f"{option}.yaml").is_file(), f"{target}: {group}={option}"
    assert chosen, f"{target}: no model, experiment or tokenizer found in {commands!r}"


def test_named_reads_lists_and_loops():
    commands = "run model=a,b data=x; for tok in p q; do run tokenizer=$tok model.net.x=1; done"
    assert named(commands, "model") == {"a", "b"}
    assert named(commands, "tokenizer") == {"p", "q"}
