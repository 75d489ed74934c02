#!/usr/bin/env bash
# README command (1): install, build, prepare the default English corpus, train
# a small byte model for a few minutes on all cores, report validation
# bits-per-byte and print a sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/make_corpora.sh
RUN=${RUN:-runs/main}
CONFIG=${CONFIG:-configs/isotropic_small.json}
STEPS=${STEPS:-1000}
if [ -d "$RUN/checkpoint" ]; then
  echo "[main] $RUN already holds a run; continuing it (remove it to start over)" >&2
  ./build/dynarch train --resume "$RUN"
else
  ./build/dynarch train --config "$CONFIG" --data data/en --out "$RUN" \
    --steps "$STEPS" --batch 16 --seq-len 256 --lr 3e-3 --dtype bf16 --eval-every 250 --eval-windows 64
fi
./build/dynarch eval -m "$RUN" --file data/en/val.bin --dtype bf16
echo "--- sample ---"
./build/dynarch generate -m "$RUN" -p "The meaning of the word" -n 300 --temperature 0.8 --top-p 0.95 --seed 1
