#!/usr/bin/env bash
# Wheels of the packages scripts/gpu_check.sh needs beyond an image that already holds PyTorch, Lightning,
# transformers, pandas, pyarrow and scipy (e.g. an offline GPU machine), for that machine's Python, into
# .whl/ (about 3 MB; gpu_check.sh installs them from there). Run it where pip reaches PyPI:
#   bash scripts/gpu_wheels.sh [python version, default 3.12]
# The versions are this checkout's environment's. polars (54 MB) is left out: without it the check runs
# on Beauty-shaped synthetic data.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
pyver="${1:-3.12}"
out="$here/../.whl"
packages=(hydra-core omegaconf pydantic pydantic_core annotated-types typing-inspection)
pins=()
for p in "${packages[@]}"; do pins+=("$("$python" -m pip freeze | grep -i "^${p//[-_]/[-_]}==")"); done
mkdir -p "$out"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$out" "${pins[@]}"
# antlr4-python3-runtime (Hydra's parser) is published as a source archive only: build its pure-Python wheel
"$python" -m pip wheel -q --no-deps -w "$out" "$("$python" -m pip freeze | grep -i '^antlr4-python3-runtime==')"
ls -l "$out"
