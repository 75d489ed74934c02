#!/usr/bin/env bash
# E5 (hmodel.md §13): an H-Model composed from pretrained parts. Two small byte LMs
# (T4, d 128) train on English and on code; an H-Model pools their 8 layers frozen
# (head.init = chain within each source, T = 8) and trains on the mixed corpus with
# the nodes frozen (routing heads, embeddings, final norm and LM head train).
# Reports bpb per language vs each source and which source's layers each language
# uses: docs/experiments/hmodel_compose.md.
# Usage: experiments/hmodel_compose.sh [SRC_STEPS] [STEPS]   (default 500, 400)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
SRC_STEPS=${1:-500}
STEPS=${2:-400}
OUT=${OUT:-runs/exp_hm_compose}
DOC=docs/experiments
BIN=./build/dynarch
mkdir -p "$OUT" "$DOC"
bash scripts/make_corpora.sh en code mixed >/dev/null
for src in en code; do
  run="$OUT/src_$src"
  run_done "$run" "$SRC_STEPS" && { echo "[exp] $run done already"; continue; }
  rm -rf "$run"
  echo "[exp] training the $src source ($SRC_STEPS steps)"
  "$BIN" train --config experiments/configs/src_t4.json --data "data/$src" --out "$run" --steps "$SRC_STEPS" \
    --batch 8 --seq-len 256 --lr 3e-3 --dtype auto --eval-every 0 --no-progress
done
cat > "$OUT/composed.json" <<JSON
{"arch_layout": ["T8"], "d_model": [128], "d_intermediate": [384],
 "attn_cfg": {"num_heads": [4], "rotary_emb_dim": [16], "window_size": [-1]},
 "hmodel": {"T": 8, "head": {"init": "chain"},
   "nodes": [{"at": [1, 2, 3, 4], "from": "$OUT/src_en", "layers": [0, 1, 2, 3], "freeze": true},
             {"at": [5, 6, 7, 8], "from": "$OUT/src_code", "layers": [0, 1, 2, 3], "freeze": true}]}}
JSON
run="$OUT/composed"
if ! run_done "$run" "$STEPS"; then
  rm -rf "$run"
  echo "[exp] training the composed H-Model's heads ($STEPS steps, nodes frozen)"
  "$BIN" train --config "$OUT/composed.json" --data data/mixed --out "$run" --steps "$STEPS" --batch 8 --seq-len 256 \
    --lr 3e-3 --dtype auto --eval-every 100 --eval-windows 48 --no-progress
fi
python3 experiments/hmodel_sets.py data/mixed "$OUT/sets"
for m in src_en src_code composed; do
  for lang in en zh code; do
    head -c 65536 "data/$lang/val.bin" > "$OUT/val_$lang.txt"
    "$BIN" eval -m "$OUT/$m" --file "$OUT/val_$lang.txt" --no-progress > "$OUT/$m/eval_$lang.txt"
  done
done
for pair in "en code" "en zh" "zh code"; do
  read -r a b <<< "$pair"
  "$BIN" routes -m "$run" --compare "$OUT/sets/$a.jsonl" "$OUT/sets/$b.jsonl" --json "$OUT/cmp_${a}_${b}.json" \
    > "$OUT/cmp_${a}_${b}.txt"
done
for lang in en code; do
  "$BIN" routes -m "$run" --file "$OUT/sets/${lang}_concat.txt" --max-bytes 2048 --json "$OUT/routes_$lang.json" \
    --dot "$DOC/hmodel_compose_$lang.dot" --svg "$DOC/hmodel_compose_$lang.svg" > "$OUT/routes_$lang.txt"
done
python3 experiments/report_hmodel_compose.py "$OUT" "$DOC" "$SRC_STEPS" "$STEPS"
echo "[exp] report: $DOC/hmodel_compose.md"
