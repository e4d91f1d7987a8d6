"""scripts/gpu_check.sh: every step runs on the CPU in --dry-run mode (the GPU mode, marked ``gpu``, where
a CUDA device is visible)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def check(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    done = subprocess.run(
        ["bash", str(SCRIPT), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_dry_run_runs_every_step_on_the_cpu(tmp_path):
    report = check(tmp_path, "--dry-run")
    assert report["failed"] == {}
    assert report["mode"].startswith("dry-run") and report["environment"]["device"] == "cpu"
    assert report["sasrec_fp32"]["seconds_per_epoch"] > 0
    agreement = report["agreement"]  # the same weights on the "device" (here the CPU too) and the CPU
    assert agreement["pass"] and agreement["same_rank_share"] == 1.0 and agreement["ndcg@10_gap"] == 0
    assert set(report["evaluation"]) == {"sasrec/amazon_beauty", "bprmf/amazon_sports"}
    for model in ("tiger", "sid_gpt"):
        assert report["generative"][model]["decode_users_per_second"] > 0


@pytest.mark.gpu
def test_on_a_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible")
    report = check(tmp_path)
    assert report["failed"] == {} and report["agreement"]["pass"]
