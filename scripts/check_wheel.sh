#!/usr/bin/env bash
# Build Earshot's wheel, install it into a fresh virtualenv outside the repository and use it as a user
# would: earshot models / index / search / similar / status on generated WAVs, and earshot-app on a real X
# server (Xvfb, Qt's xcb platform) with a screenshot that must not be blank. Needs ./scripts/setup.sh --dev.
# Usage: scripts/check_wheel.sh   Environment: PYTHON, TORCH_SPEC, TORCH_INDEX_URL (as setup.sh),
#        KEEP=1 keeps the work folder (its path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_VENV=${REPO_VENV:-.venv}  # the checkout's set-up (scripts/setup.sh --dev): builds the wheel, takes the screenshot
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
work=$(mktemp -d "${TMPDIR:-/tmp}/earshot-wheel.XXXXXX")
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$work"' EXIT
echo "check_wheel: working in $work"

"$REPO_VENV"/bin/pip wheel -q --no-deps . -w "$work/dist"
wheel=$(ls "$work"/dist/earshot-*.whl)
echo "check_wheel: built $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"

"$PYTHON" -m venv "$work/venv"
V=$work/venv/bin
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  $V/pip install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
else
  $V/pip install -q "$TORCH_SPEC"
fi
$V/pip install -q "${wheel}[app]"

mkdir "$work/run"
cp tests/packaging/wheel_smoke.py "$work/"  # run from outside the checkout: nothing of it is on sys.path
bundles=$(find resources/models -mindepth 2 -maxdepth 2 -name bundle.json -not -path '*/.*' | wc -l)
(cd "$work/run" && env -u PYTHONPATH $V/python "$work/wheel_smoke.py" --bin "$V" --work "$work/run" --bundles "$bundles")

app=("$V/earshot-app" --library "$work/run/library" --settings "$work/run/settings.ini")
if command -v Xvfb >/dev/null; then
  "$REPO_VENV"/bin/python -m tests.desktop_app.xvfb --isolated --cwd "$work/run" --out "$work/app.png" -- "${app[@]}"
else
  # No X server to show a window on: the app must still start and open its library (offscreen platform).
  echo "check_wheel: Xvfb is not installed; starting earshot-app offscreen instead of on a real display"
  rc=0; (cd "$work/run" && env -u PYTHONPATH QT_QPA_PLATFORM=offscreen timeout 20 "${app[@]}") || rc=$?
  [[ $rc == 124 && -f "$work/run/library/earshot.db" ]] || { echo "check_wheel: earshot-app failed ($rc)"; exit 1; }
fi
echo "check_wheel: the wheel works outside the repository"
