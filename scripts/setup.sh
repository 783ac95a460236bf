#!/usr/bin/env bash
# Set up Earshot in ./.venv (CPU-only torch). Usage: scripts/setup.sh [--dev]
#   On Debian/Ubuntu as root it also installs the desktop app's system libraries (PortAudio, and the X/OpenGL
#   libraries Qt's xcb platform plugin loads); otherwise it prints the apt-get command for the missing ones.
#   --dev   also install the test/lint tools and Ray (the cluster tests), and (as root) Xvfb + x11-utils for
#           the real-display test.
# Environment: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0),
#              TORCH_INDEX_URL (optional, e.g. https://download.pytorch.org/whl/cpu for a CPU wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

# Debian/Ubuntu package : a shared library it provides. PortAudio for audio previews; the rest is what
# PySide6's xcb platform plugin and QtWidgets load (ldd on libqxcb.so; desktop_app/qt_platform.py names the
# same packages when one is missing at start-up).
system_libs=(
  libportaudio2:libportaudio.so.2
  libxcb-cursor0:libxcb-cursor.so.0 libxcb-icccm4:libxcb-icccm.so.4 libxcb-image0:libxcb-image.so.0
  libxcb-keysyms1:libxcb-keysyms.so.1 libxcb-randr0:libxcb-randr.so.0 libxcb-render-util0:libxcb-render-util.so.0
  libxcb-shape0:libxcb-shape.so.0 libxcb-xinerama0:libxcb-xinerama.so.0 libxcb-xkb1:libxcb-xkb.so.1
  libxkbcommon-x11-0:libxkbcommon-x11.so.0 libx11-xcb1:libX11-xcb.so.1 libegl1:libEGL.so.1 libgl1:libGL.so.1
  libfontconfig1:libfontconfig.so.1 libdbus-1-3:libdbus-1.so.3 libglib2.0-0:libglib-2.0.so.0
)
missing=()
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)  # /sbin is not on a Debian user's PATH
if command -v apt-get >/dev/null && [[ -x $ldconfig ]]; then
  have=$("$ldconfig" -p | awk 'NR > 1 {print $1}')
  for pair in "${system_libs[@]}"; do
    grep -qxF "${pair#*:}" <<<"$have" || missing+=("${pair%%:*}")
  done
  if [[ $dev == 1 ]]; then
    command -v Xvfb >/dev/null || missing+=(xvfb)
    command -v xwininfo >/dev/null || missing+=(x11-utils)
  fi
fi
if (( ${#missing[@]} )); then
  if [[ $(id -u) == 0 ]]; then
    echo "Installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    echo "Note: the desktop app needs system packages that are missing; install them with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
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
[[ $dev == 1 ]] && extras="app,train,dev,cluster"  # cluster: Ray (~80 MB), for the --cluster tests
.venv/bin/pip install -q -e ".[${extras}]"
# The PaSST network (full training recipe): its declared dependencies (timm → torchvision) would pull a CUDA
# torch of several GB, and the network code needs only torch — so it is installed without them.
.venv/bin/pip install -q --no-deps "hear21passt==0.0.26"
echo "Earshot is set up in $(pwd)/.venv  (try: .venv/bin/earshot models)"
