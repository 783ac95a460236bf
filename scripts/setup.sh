#!/usr/bin/env bash
# Set up Earshot in ./.venv (CPU-only torch). Usage: scripts/setup.sh [--dev]
#   --dev   also install the test/lint tools and the desktop app's system library (PortAudio).
# Environment: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0),
#              TORCH_INDEX_URL (optional, e.g. https://download.pytorch.org/whl/cpu for a CPU wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

if [[ $dev == 1 ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  if ! ldconfig -p | grep -q libportaudio.so.2; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2 >/dev/null
  fi
fi

[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    .venv/bin/pip install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
  else
    .venv/bin/pip install -q "$TORCH_SPEC"
  fi
fi
extras="app"
[[ $dev == 1 ]] && extras="app,train,dev"
.venv/bin/pip install -q -e ".[${extras}]"
# The PaSST network (full training recipe): its declared dependencies (timm → torchvision) would pull a CUDA
# torch of several GB, and the network code needs only torch — so it is installed without them.
.venv/bin/pip install -q --no-deps "hear21passt==0.0.26"
echo "Earshot is set up in $(pwd)/.venv  (try: .venv/bin/earshot models)"
