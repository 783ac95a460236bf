#!/usr/bin/env bash
# Rebuild the embedded default model from scratch on a CPU: corpus → features → stage 1 (3 seeds) →
# teacher → stage 2 → stage 3 → ensemble → export (+ the ablation table of the model card).
#
#   scripts/build_default_model.sh [RUNS_DIR] [BUNDLE_DEST]
#     RUNS_DIR     default runs/sfx-small            (checkpoints, metrics, curves; git-ignored)
#     BUNDLE_DEST  default RUNS_DIR/bundle/<name>-<version> of the recipe (earshot-sfx-small-2.1.0)
#   Environment: PYTHON (interpreter, absolute; default the repository's .venv/bin/python),
#                SEEDS ("0 1 2"), EPOCHS (recipe default), THREADS (1 per run: fastest on 2 cores),
#                JOBS (1: seeds one after another; N: up to N seeds' runs side by side — each run is
#                single-threaded and deterministic, so the bundle is the same; the first stage-1 seed runs
#                alone, as it fills the feature cache the others read),
#                LAST_STAGE (3, the default: stage 1 + teacher, distillation and augmentation, cluster
#                heads, as 1.0.0 and 2.1.0 were built; 1: stage-1 members only, as 2.0.x),
#                KEEP (a bundle whose members join the ensemble; default
#                resources/models/earshot-sfx-small-1.0.0, as 2.0.0; empty: none),
#                RECIPE (default training/recipes/sfx-small), QUICK=1 (the reduced form the tests run: the
#                recipe brings its own data and weights, so no corpus build, no download, no ablation table).
# Needs the setup from scripts/setup.sh --dev, apt-get (Debian packages of sound effects) and the
# `fluidsynth` command (apt-get install fluidsynth) to render the sound fonts.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/sfx-small}
SEEDS=${SEEDS:-0 1 2}
THREADS=${THREADS:-1}
JOBS=${JOBS:-1}
PY="${PYTHON:-$PWD/.venv/bin/python}"  # absolute: some steps run in another folder
R=${RECIPE:-training/recipes/sfx-small}
DEST=${2:-$RUNS/bundle/$("$PY" -c "import sys; from training.config import load_recipe; r = load_recipe(sys.argv[1]); print(f'{r.name}-{r.version}')" "$R/stage1.toml")}
QUICK=${QUICK:-0}
LAST_STAGE=${LAST_STAGE:-3}
KEEP=${KEEP-resources/models/earshot-sfx-small-1.0.0}
CORPUS=${CORPUS:-data/debian_sfx/corpus}
COVERAGE=${COVERAGE:-data/corpus2/corpus}

# 1. The aiSFX weights (CC BY 4.0), converted once from the PyPI wheel to safetensors (embedding network and
#    the nine classifier heads, whose outputs 2.0 uses as extra audio features).
if [[ $QUICK != 1 && ! -f cache/aisfx/aisfx_cnn.safetensors ]]; then
  mkdir -p cache/aisfx/wheel
  "$PWD/.venv/bin/pip" download -q --no-deps "aisfx==0.1.2" -d cache/aisfx/wheel
  (cd cache/aisfx/wheel && "$PY" -m zipfile -e aisfx-0.1.2-py2.py3-none-any.whl .)
  "$PY" -m scripts.convert_aisfx --wheel-dir cache/aisfx/wheel --out cache/aisfx/aisfx_cnn.safetensors --fp16
fi

# 2. The corpus: Debian packages of sound effects (never the reserved evaluation packages).
if [[ $QUICK != 1 && ! -f "$CORPUS/manifest.csv" ]]; then
  "$PY" -m training.data.debian --inventory training/data/sfx_inventory.csv --cache data/debian_sfx/cache \
      --out "$CORPUS"
  "$PY" -m training.data.debian --inventory training/data/extra_inventory.csv --cache data/debian_sfx/cache \
      --out "$CORPUS"
fi
# 3. The coverage corpus (training split only): instruments rendered note by note from General MIDI sound fonts
#    (needs `fluidsynth` from apt), GCompris, Hydrogen kits, LMMS samples, FlightGear. Its captions are committed
#    (training/data/coverage_captions.csv, written by `python -m training.data.debian.coverage`).
#    Built only when the recipe trains on it (2.0.0 trains on part of it).
if [[ $QUICK != 1 && ! -f "$COVERAGE/manifest.csv" ]] && grep -q coverage_captions "$R/common.toml"; then
  "$PY" -m training.data.debian --inventory training/data/coverage_inventory.csv --cache data/corpus2/cache \
      --out "$COVERAGE" --no-skip-rules --no-progress
fi

# 4. The blind evaluation set (reported, never used for a choice): packages never trained on.
if [[ $QUICK != 1 && ! -f data/blind/clips/manifest.csv ]]; then
  "$PY" -m training.data.blind.build --cache data/blind/cache --out data/blind/clips
fi

common=(--set "train.cpu_threads=$THREADS" --set "teacher.out=$RUNS/teacher")
[[ -n "${EPOCHS:-}" ]] && common+=(--set "train.epochs=$EPOCHS")
members=()
for s in $SEEDS; do members+=("\"$RUNS/stage1-s$s\""); done
teacher_members="[$(IFS=,; echo "${members[*]}")]"
final=()
if [[ -n "$KEEP" ]]; then
  # The kept bundle's members as run directories (checked against the recipe), candidates of the ensemble.
  "$PY" -m training.bundle_runs "$KEEP" "$RUNS/kept" --config $R/stage1.toml
  for m in $(ls "$RUNS/kept"); do final+=("\"$RUNS/kept/$m\""); done
fi
for s in $SEEDS; do final+=("\"$RUNS/stage$LAST_STAGE-s$s\""); done
final_members="[$(IFS=,; echo "${final[*]}")]"
T() { "$PY" -m training.cli "$@" "${common[@]}"; }

# Per-seed work, JOBS at a time (a failed job fails the build: `wait -n` returns its status).
each_seed() {  # each_seed FUNCTION [FIRST_ALONE]: FUNCTION s for every seed (FIRST_ALONE=1: the first seed
               # runs before the others start)
  local fn=$1 first=${2:-0} running=0 s
  for s in $SEEDS; do
    if [[ $JOBS -le 1 || $first == 1 ]]; then "$fn" "$s"; first=0; continue; fi
    "$fn" "$s" & running=$((running + 1))
    if [[ $running -ge $JOBS ]]; then wait -n; running=$((running - 1)); fi
  done
  while [[ $running -gt 0 ]]; do wait -n; running=$((running - 1)); done
}
stage1_seed() { T stage1 --config $R/stage1.toml --set train.seed=$1 --set train.out=$RUNS/stage1-s$1; }
finetune_seed() {
  T stage2 --config $R/stage2.toml --set train.seed=$1 --set train.init_from=$RUNS/stage1-s$1 \
    --set train.teacher=$RUNS/teacher --set train.out=$RUNS/stage2-s$1
  T stage3 --config $R/stage3.toml --set train.seed=$1 --set train.init_from=$RUNS/stage2-s$1 \
    --set train.teacher=$RUNS/teacher --set train.out=$RUNS/stage3-s$1
}
each_seed stage1_seed 1
if [[ $LAST_STAGE == 3 ]]; then
  T teacher --config $R/teacher.toml --set "teacher.members=$teacher_members"
  each_seed finetune_seed
fi
T ensemble --config $R/ensemble.toml --set "ensemble.members=$final_members" --set "ensemble.out=$RUNS/ensemble"
for run in $(ls -d $RUNS/stage[123]-s* 2>/dev/null); do
  T evaluate --config $R/stage3.toml --run "$run" >/dev/null
done
T export --config $R/export.toml --set "export.source=$RUNS/ensemble" --set "export.dest=$DEST"
if [[ $QUICK != 1 ]]; then
  "$PY" -m training.ablation "$RUNS" "$DEST" --eval-set dev > "$RUNS/ablation-dev.md"
  "$PY" -m training.ablation "$RUNS" "$DEST" --eval-set test > "$RUNS/ablation-test.md"
  "$PY" -m training.ablation "$RUNS" "$DEST" --eval-set blind > "$RUNS/ablation-blind.md"
  # The card is documentation, not part of bundle_id: add the stage tables, the measured feature ablation
  # (ABLATION.md) and the known weaknesses.
  { printf '\n## Stages (development set: val clips, queries written apart from captioning; it chose the weights)\n\n'
    cat "$RUNS/ablation-dev.md"
    printf '\n## Stages (test split, hand-checked multi-relevance queries)\n\n'; cat "$RUNS/ablation-test.md"
    printf '\n## Stages (blind set: packages never trained on, queries written apart from captioning)\n\n'
    cat "$RUNS/ablation-blind.md"; cat "$R/ABLATION.md" "$R/WEAKNESSES.md"; } >> "$DEST/MODEL_CARD.md"
fi
echo "bundle: $DEST"
