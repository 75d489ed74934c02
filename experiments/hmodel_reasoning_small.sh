#!/usr/bin/env bash
# E1, third round (issue #19): a reasoning task a tiny byte model can learn on one CPU thread
# (experiments/hmodel_e1_small.py: a fixed, memorised Horn rule base over 24 one-letter atoms,
# 3-5 facts and a question per item, e.g. "dkb?t"; depths 0-3, each depth balanced True / False with
# near-miss negatives, so the lookup reference is 1.0 at depth 0 and 0.5 deeper, 0.625 overall).
# Stage 1: the static T2 stack (d 64), SEEDS. Stage 2, only when the static stack beats the lookup by
# GATE on every seed: the H-Model whose pool is the same 2 layers, T = L = 2 and T = 2L = 4
# (per-sequence routing, heads initialised to the chain; equal parameters to static_T2 plus the
# routing heads), and the static T4 stack (d 64: the same 4 layer calls per example as hm_T4 along its
# walk, twice the parameters). Same data, steps, batch, lr and seeds for all. Accuracy by depth on the
# test split (`dynarch eval`). Writes docs/experiments/$REPORT.{md,json}. STEPS 3000 puts every model at
# the ceiling; STEPS 300 (REPORT hmodel_reasoning_small_300, OUT runs/exp_hm_reasoning_small_300) compares
# what each learns from a small budget.
# Usage: experiments/hmodel_reasoning_small.sh  (env STEPS 3000, BATCH 64, LR 3e-3, SEEDS "1 2",
#        TRAIN_PER_DEPTH 10000, GATE 0.05, THREADS 1, OUT runs/exp_hm_reasoning_small,
#        REPORT hmodel_reasoning_small, IN_CONTEXT 0 (1: the rules written in each item), SEQ_LEN 64)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
STEPS=${STEPS:-3000}
BATCH=${BATCH:-64}
LR=${LR:-3e-3}
SEEDS=${SEEDS:-"1 2"}
TRAIN_PER_DEPTH=${TRAIN_PER_DEPTH:-10000}
GATE=${GATE:-0.05}
THREADS=${THREADS:-1}
OUT=${OUT:-runs/exp_hm_reasoning_small}
REPORT=${REPORT:-hmodel_reasoning_small}
SEQ_LEN=${SEQ_LEN:-64}                   # longest item + BOS must fit (in-context items: 128)
IC=(); [ "${IN_CONTEXT:-0}" = 1 ] && IC=(--in-context)
DOC=docs/experiments
BIN=./build/dynarch
C=experiments/configs
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
DATA=$OUT/data
[ -f "$DATA/manifest.json" ] || python3 experiments/hmodel_e1_small.py "$DATA" --train-per-depth "$TRAIN_PER_DEPTH" \
  --test-per-depth 250 --max-depth 3 --seed 0 "${IC[@]}"
train() {  # NAME CONFIG SEED
  local run=$OUT/${1}_s$3
  if ! run_done "$run" "$STEPS"; then
    rm -rf "$run"
    echo "[exp] $1 seed $3 ($STEPS steps x $BATCH)"
    local start; start=$(date +%s)
    "$BIN" train --config "$2" --data "$DATA" --out "$run" --steps "$STEPS" --batch "$BATCH" --lr "$LR" \
      --seq-len "$SEQ_LEN" --seed "$3" --eval-every 250 --eval-windows 300 --save-every 100000 --threads "$THREADS" \
      --no-progress > "$run.log" 2>&1
    echo $(( $(date +%s) - start )) > "$run/train_seconds"
  fi
  [ -f "$run/eval.json" ] || "$BIN" eval -m "$run" --file "$DATA/test.jsonl" --json "$run/eval.json" \
    --threads "$THREADS" --no-progress > "$run/eval.txt"
}
for s in $SEEDS; do train static_T2 $C/reasoning_t2_d64_last.json "$s"; done
# the gate: static_T2 above the lookup reference by GATE on every seed
if python3 experiments/report_hmodel_reasoning_small.py "$OUT" "$DOC" "$SEEDS" --gate "$GATE"; then
  for s in $SEEDS; do
    train hm_T2 $C/reasoning_small_hm_T2.json "$s"
    train hm_T4 $C/reasoning_small_hm_T4.json "$s"
    train static_T4 $C/reasoning_t4_d64_last.json "$s"
  done
else
  echo "[exp] static_T2 does not beat the lookup by $GATE on every seed: H-Model runs skipped"
fi
python3 experiments/report_hmodel_reasoning_small.py "$OUT" "$DOC" "$SEEDS" \
  --name "$REPORT" --command "STEPS=$STEPS IN_CONTEXT=${IN_CONTEXT:-0} SEQ_LEN=$SEQ_LEN BATCH=$BATCH LR=$LR SEEDS=\"$SEEDS\" TRAIN_PER_DEPTH=$TRAIN_PER_DEPTH OUT=$OUT REPORT=$REPORT experiments/hmodel_reasoning_small.sh"
echo "[exp] report: $DOC/$REPORT.md"
