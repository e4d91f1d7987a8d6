#!/usr/bin/env bash
# The GPU path in one go (at most ~8 minutes on one GPU): SASRec's epoch (float32, bf16-mixed, compiled),
# the evaluation pass against its floor, TIGER's and sid_gpt's step and decode speed, and the same weights
# scored on the GPU and the CPU. Details: scripts/gpu_check.py.
#   bash scripts/gpu_check.sh [--dry-run] [--out outputs/gpu_check/report.json]
# Uses .venv/bin/python when there is one, else python3 (an image with PyTorch); packages in .whl/
# (scripts/gpu_wheels.sh) are installed first into a temporary folder when Hydra is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=python3
if ! "$python" -c "import hydra" 2>/dev/null && compgen -G "$repo/.whl/*.whl" >/dev/null; then
  site="$(mktemp -d)"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$repo"/.whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE="${WANDB_MODE:-offline}"
exec "$python" "$here/gpu_check.py" "$@"
