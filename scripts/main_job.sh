#!/usr/bin/env bash
# README command (1): install, build, prepare the default English corpus, train
# a small byte model for a few minutes on all cores, report validation
# bits-per-byte, write the chunk view of a sample paragraph, print a sample.
# Default: a 1-stage H-Net (configs/hnet_small.json). The isotropic model:
#   CONFIG=configs/isotropic_small.json STEPS=1000 BATCH=16 SEQ=256 LR=3e-3 bash scripts/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/make_corpora.sh
RUN=${RUN:-runs/main}
CONFIG=${CONFIG:-configs/hnet_small.json}
STEPS=${STEPS:-600}
BATCH=${BATCH:-8}
SEQ=${SEQ:-512}
LR=${LR:-2e-3}
if [ -d "$RUN/checkpoint" ]; then
  echo "[main] $RUN already holds a run; continuing it (remove it to start over)" >&2
  ./build/dynarch train --resume "$RUN"
else
  ./build/dynarch train --config "$CONFIG" --data data/en --out "$RUN" \
    --steps "$STEPS" --batch "$BATCH" --seq-len "$SEQ" --lr "$LR" --dtype "${DTYPE:-auto}" --eval-every 200 --eval-windows 64
fi
./build/dynarch eval -m "$RUN" --file data/en/val.bin --dtype "${DTYPE:-auto}"
if ./build/dynarch info -m "$RUN" --json | grep -q '"stages":0'; then :; else
  echo "--- chunk view ($RUN/chunks.html) ---"
  head -c 1400 data/en/val.bin | tail -c 600 > "$RUN/sample.txt"
  ./build/dynarch chunks -m "$RUN" --file "$RUN/sample.txt" --html "$RUN/chunks.html"
fi
echo "--- sample ---"
./build/dynarch generate -m "$RUN" -p "The meaning of the word" -n 300 --temperature 0.8 --top-p 0.95 --seed 1
