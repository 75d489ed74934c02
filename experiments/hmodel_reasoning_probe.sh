#!/usr/bin/env bash
# E1 precondition (issue #19): does the static baseline learn the reasoning task at all
# within a CPU budget? Small static stacks (T2, d 64, last-byte or mean pooling) on short
# closed-world theories (no distractor facts, one distractor rule, depths 0-3), and on
# depth 0 alone (the lookup task). Prints validation accuracy by step for each probe;
# the H-Model comparison (hmodel_reasoning.sh) only makes sense once one of these beats
# the lookup reference (0.625 on depths 0-3) clearly.
# Usage: experiments/hmodel_reasoning_probe.sh   (env OUT (runs/exp_hm_e1_probe), THREADS (1))
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/exp_hm_e1_probe}
THREADS=${THREADS:-1}
BIN=./build/dynarch
[ -x "$BIN" ] || bash scripts/build.sh
mkdir -p "$OUT"
CFG=experiments/configs/reasoning_t2_d64_last.json
sed 's/"pool": "last"/"pool": "mean"/' "$CFG" > "$OUT/mean.json"
[ -f "$OUT/d03/manifest.json" ] || "$BIN" reasoning --out "$OUT/d03" --train-per-depth 8000 --test-per-depth 250 \
  --max-depth 3 --closed-world --distractor-facts 0 --distractor-rules 1 --seed 0
[ -f "$OUT/d0/manifest.json" ] || "$BIN" reasoning --out "$OUT/d0" --train-per-depth 20000 --test-per-depth 500 \
  --max-depth 0 --closed-world --distractor-facts 2 --distractor-rules 1 --seed 0
# NAME DATA CONFIG STEPS LR
for p in "last_lr3e-3 d03 $CFG 600 3e-3" "mean_lr1e-3 d03 $OUT/mean.json 1000 1e-3" \
         "last_lr5e-4 d03 $CFG 1000 5e-4" "depth0_lr1e-3 d0 $CFG 1500 1e-3" "last_lr1e-3_4k d03 $CFG 4000 1e-3"; do
  read -r name data cfg steps lr <<< "$p"
  run=$OUT/$name
  [ -f "$run/metrics.jsonl" ] && grep -q "\"step\":$steps,\"val_acc\"" "$run/metrics.jsonl" || {
    rm -rf "$run"
    OMP_NUM_THREADS=$THREADS "$BIN" train --config "$cfg" --out "$run" --data "$OUT/$data" --steps "$steps" --batch 32 \
      --lr "$lr" --seq-len 512 --seed 0 --eval-every 100 --eval-windows 300 --save-every 100000 --threads "$THREADS" \
      --no-progress > "$run.log" 2>&1
  }
  echo "$name: $(grep -o '"step":[0-9]*,"val_acc":[0-9.]*' "$run/metrics.jsonl" | sed 's/"step"://; s/,"val_acc":/: /' | tr '\n' ' ')"
done
