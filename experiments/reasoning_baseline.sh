#!/usr/bin/env bash
# E1 (hmodel.md §13): multi-hop rule reasoning, the static-stack baseline.
# Generates the reasoning dataset, trains each model entry below as a byte
# classifier (True / False / Unknown), evaluates accuracy by proof depth and
# writes docs/experiments/reasoning_baseline.{md,json}.
# Usage: experiments/reasoning_baseline.sh
#   env: TRAIN_PER_DEPTH (2000) TEST_PER_DEPTH (500) STEPS (600) BATCH (16) LR (1e-3)
#        SEED (0) THREADS (0 = all cores) OUT (runs/exp_reasoning) MAX_DEPTH (5)
#        CLOSED_WORLD (0; 1 = True/False only) DISTRACTOR_FACTS (5) DISTRACTOR_RULES (6) REPORT (reasoning_baseline: docs/experiments/REPORT.{md,json})
#        MODELS_SPEC ("NAME CONFIG [flags];NAME CONFIG ..." replaces the MODELS list below)
# experiments/hmodel_reasoning.sh runs E1 proper (H-Model vs static stack) through this script.
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
TRAIN_PER_DEPTH=${TRAIN_PER_DEPTH:-2000}
TEST_PER_DEPTH=${TEST_PER_DEPTH:-500}
STEPS=${STEPS:-600}
BATCH=${BATCH:-16}
LR=${LR:-1e-3}
SEED=${SEED:-0}
THREADS=${THREADS:-0}
OUT=${OUT:-runs/exp_reasoning}
MAX_DEPTH=${MAX_DEPTH:-5}
CLOSED_WORLD=${CLOSED_WORLD:-0}
REPORT=${REPORT:-reasoning_baseline}
DISTRACTOR_FACTS=${DISTRACTOR_FACTS:-5}
DISTRACTOR_RULES=${DISTRACTOR_RULES:-6}
DOC=docs/experiments
BIN=./build/dynarch
[ -x "$BIN" ] || bash scripts/build.sh

# One entry per model: NAME CONFIG [extra train flags]. The H-Model (per_sequence
# routing over the same T4 layers, T = 4 and 8) is added here as more entries.
MODELS=(
  "static_T4 experiments/configs/reasoning_t4.json"
)
if [ -n "${MODELS_SPEC:-}" ]; then IFS=';' read -r -a MODELS <<< "$MODELS_SPEC"; fi
MODE=open
CW_FLAG=()
[ "$CLOSED_WORLD" = 1 ] && MODE=closed && CW_FLAG=(--closed-world)

DATA=$OUT/data
if [ ! -f "$DATA/manifest.json" ] || ! grep -q "\"train_per_depth\": $TRAIN_PER_DEPTH," "$DATA/manifest.json" \
   || ! grep -q "\"test_per_depth\": $TEST_PER_DEPTH" "$DATA/manifest.json" || ! grep -q "\"seed\": $SEED," "$DATA/manifest.json" \
   || ! grep -q "\"max_depth\": $MAX_DEPTH," "$DATA/manifest.json" || ! grep -q "\"mode\": \"$MODE\"" "$DATA/manifest.json" \
   || ! grep -q "\"distractor_facts\": $DISTRACTOR_FACTS," "$DATA/manifest.json" \
   || ! grep -q "\"distractor_rules\": $DISTRACTOR_RULES," "$DATA/manifest.json"; then
  rm -rf "$DATA"
  "$BIN" reasoning --out "$DATA" --train-per-depth "$TRAIN_PER_DEPTH" --test-per-depth "$TEST_PER_DEPTH" --seed "$SEED" \
    --max-depth "$MAX_DEPTH" --distractor-facts "$DISTRACTOR_FACTS" --distractor-rules "$DISTRACTOR_RULES" "${CW_FLAG[@]}"
fi

COMMON=(--data "$DATA" --steps "$STEPS" --batch "$BATCH" --lr "$LR" --seq-len 1025 --seed "$SEED"
        --eval-every 100 --eval-windows 300 --save-every 100 --threads "$THREADS" --no-progress)
for entry in "${MODELS[@]}"; do
  read -r name cfg extra <<< "$entry"
  run=$OUT/$name
  if run_done "$run" "$STEPS"; then
    echo "[exp] $run done already"
  elif [ -f "$run/checkpoint/trainer.safetensors" ]; then
    echo "[exp] resuming $name"
    start=$(date +%s)
    "$BIN" train --resume "$run" --threads "$THREADS" --no-progress
    echo $(( $(cat "$run/train_seconds" 2>/dev/null || echo 0) + $(date +%s) - start )) > "$run/train_seconds"
  else
    rm -rf "$run"
    echo "[exp] training $name ($STEPS steps x $BATCH items)"
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$BIN" train --config "$cfg" --out "$run" "${COMMON[@]}" $extra
    echo $(( $(date +%s) - start )) > "$run/train_seconds"
  fi
  "$BIN" eval -m "$run" --file "$DATA/test.jsonl" --json "$run/eval.json" --threads "$THREADS" --no-progress \
    | tee "$run/eval.txt"
done
REPORT=$REPORT python3 experiments/report_reasoning.py "$OUT" "$DOC" "${MODELS[@]%% *}"
echo "[exp] report: $DOC/$REPORT.md"
