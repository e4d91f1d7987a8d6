"""Facts about where a run happened: hardware, package versions, git state, peak memory."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.metadata
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    import torch

PACKAGES = ("recbench", "torch", "lightning", "hydra-core", "numpy", "pandas", "pyarrow", "wandb")


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, object]:
    import torch

    return {
        "cpu": cpu_name(),
        "cpu_count": psutil.cpu_count(logical=True) or 0,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def git_state(path: Path | None = None) -> dict[str, object]:
    """Commit and dirty flag of the repository holding the recbench code (None outside a checkout)."""
    cwd = path or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {"sha": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"sha": None, "dirty": None}


STATUS = Path("/proc/self/status")


def reset_peak_memory() -> bool:
    """Start the peak-memory count afresh (Linux: ``clear_refs`` 5 resets VmHWM to the current size), so
    that each job of a sweep run in one process reports its own peak, not the sweep's so far. What the
    previous job left is released first: its reference cycles (``gc.collect``) and the memory glibc keeps
    after a free (``malloc_trim``; on ML-1M EASE, 330 of the 980 MB resident after a job). False where
    the system cannot reset (the peak is then the process's since it started)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb() -> float:
    """Peak resident set size of this process since it started or since :func:`reset_peak_memory`
    (Linux: VmHWM; elsewhere ru_maxrss, KiB on Linux, bytes on macOS)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def device_name(device: torch.device) -> str:
    """The accelerator's name (``cpu`` for the CPU), as benchmark reports record it."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: a timer around GPU code otherwise measures only the launch."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
