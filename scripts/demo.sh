#!/usr/bin/env bash
# The main job on the embedded default model: fetch a few hundred real sound effects that Debian ships
# (game and desktop sounds), index them into a demo library, and search them by description.
# Usage: scripts/demo.sh [DEMO_DIR]   (default ~/.cache/earshot-demo; needs apt-get, as on Debian/Ubuntu)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${1:-$HOME/.cache/earshot-demo}
PACKAGES=(wordwarvi-sound minetest-data oxygen-sounds sound-theme-freedesktop)
mkdir -p "$DEMO/debs" "$DEMO/sounds"
for pkg in "${PACKAGES[@]}"; do
  if [[ ! -d "$DEMO/sounds/$pkg" ]]; then
    if ! ls "$DEMO/debs/${pkg}"_*.deb >/dev/null 2>&1; then
      (cd "$DEMO/debs" && apt-get download "$pkg" >/dev/null 2>&1) || {
        [[ $(id -u) == 0 ]] && apt-get update -qq && (cd "$DEMO/debs" && apt-get download "$pkg" >/dev/null)
      }
    fi
    tmp=$(mktemp -d)
    dpkg -x "$DEMO/debs/${pkg}"_*.deb "$tmp"
    mkdir -p "$DEMO/sounds/$pkg"
    find "$tmp" -type f \( -iname '*.wav' -o -iname '*.ogg' -o -iname '*.oga' -o -iname '*.flac' \) \
      -exec cp -t "$DEMO/sounds/$pkg" {} +
    rm -rf "$tmp"
  fi
done
E=".venv/bin/earshot --library $DEMO/library"
$E models
# The shipped default, also for a demo library indexed by an older default (moved by re-projection, no decoding).
$E --model "$(cat resources/models/DEFAULT)" index "$DEMO/sounds"
for q in "explosion" "metal clang" "footsteps" "water splash" "door opening" "a short notification chime"; do
  echo; echo "── $q"; $E search "$q" -k 5
done
echo; $E status
