#!/usr/bin/env bash
# H-Net (1 stage, N = 6) vs an isotropic byte Transformer with matched FLOPs per
# byte and the same bytes seen, on the English and the code corpus.
# Writes docs/experiments/hnet_vs_isotropic.md (+ SVG curves, chunk views).
# Usage: experiments/hnet_vs_isotropic.sh [STEPS]   (default 500 steps x 8 x 512 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
STEPS=${1:-500}
OUT=runs/exp_hnet
DOC=docs/experiments
mkdir -p "$OUT" "$DOC"
bash scripts/make_corpora.sh >/dev/null
COMMON=(--steps "$STEPS" --batch 8 --seq-len 512 --lr 2e-3 --dtype auto --eval-every 100 --eval-windows 64 --no-progress)
for corpus in en code; do
  for model in hnet iso; do
    cfg=experiments/configs/hnet_small.json
    [ "$model" = iso ] && cfg=experiments/configs/iso_matched.json
    run="$OUT/${model}_${corpus}"
    if run_done "$run" "$STEPS"; then
      echo "[exp] $run done already"; continue
    fi
    rm -rf "$run"
    echo "[exp] training $model on $corpus ($STEPS steps)"
    ./build/dynarch train --config "$cfg" --data "data/$corpus" --out "$run" "${COMMON[@]}"
  done
done
# Chunk views of a validation paragraph of each corpus.
head -c 1200 data/en/val.bin | tail -c 700 > "$OUT/sample_en.txt"
head -c 1500 data/code/val.bin | tail -c 700 > "$OUT/sample_code.txt"
for corpus in en code; do
  ./build/dynarch chunks -m "$OUT/hnet_$corpus" --file "$OUT/sample_$corpus.txt" --html "$DOC/chunks_$corpus.html" \
    > "$OUT/chunks_$corpus.txt" 2>/dev/null
done
python3 experiments/report_hnet.py "$OUT" "$DOC" "$STEPS"
echo "[exp] report: $DOC/hnet_vs_isotropic.md"
