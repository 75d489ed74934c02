#!/usr/bin/env bash
# E2 (hmodel.md §13): input-dependent routing. A per-token H-Model byte LM (pool
# m1T1f1g1: Mamba-2, attention+MLP, SwiGLU, GRU; d 128; T = 4) and the plain stack of
# the same layers train on the mixed English / Chinese / code corpus (data.md §5);
# then bpb per language, the routing per language (expected depth, usage, graphs),
# the JS divergence matrix between languages (with a same-language control) and the
# per-token routing across "switch" windows. Writes docs/experiments/hmodel_languages.md.
# Usage: experiments/hmodel_languages.sh [STEPS]   (default 800 steps x 8 x 256 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
STEPS=${1:-800}
OUT=${OUT:-runs/exp_hm_lang}
DOC=docs/experiments
BIN=./build/dynarch
mkdir -p "$OUT" "$DOC"
bash scripts/make_corpora.sh mixed >/dev/null
for m in hmodel plain; do
  cfg=experiments/configs/hm_lang.json
  [ "$m" = plain ] && cfg=experiments/configs/hm_lang_plain.json
  run="$OUT/$m"
  if run_done "$run" "$STEPS"; then
    echo "[exp] $run done already"
  else
    rm -rf "$run"
    echo "[exp] training $m ($STEPS steps)"
    start=$(date +%s)
    "$BIN" train --config "$cfg" --data data/mixed --out "$run" --steps "$STEPS" --batch 8 --seq-len 256 \
      --lr 2e-3 --dtype auto --eval-every 200 --eval-windows 48 --no-progress
    echo $(( $(date +%s) - start )) > "$run/train_seconds"
  fi
  for lang in en zh code; do
    head -c 65536 "data/$lang/val.bin" > "$OUT/val_$lang.txt"
    "$BIN" eval -m "$run" --file "$OUT/val_$lang.txt" --no-progress > "$run/eval_$lang.txt"
  done
done
# Input sets from the analysis windows (validation text only): per language, two
# disjoint halves (the second half is the same-language control), and the switch windows.
python3 experiments/hmodel_sets.py data/mixed "$OUT/sets"
RUN="$OUT/hmodel"
for pair in "en zh" "en code" "zh code" "en en2" "zh zh2" "code code2"; do
  read -r a b <<< "$pair"
  "$BIN" routes -m "$RUN" --compare "$OUT/sets/$a.jsonl" "$OUT/sets/$b.jsonl" --json "$OUT/cmp_${a}_${b}.json" \
    > "$OUT/cmp_${a}_${b}.txt"
done
for lang in en zh code; do
  "$BIN" routes -m "$RUN" --file "$OUT/sets/${lang}_concat.txt" --max-bytes 2048 --json "$OUT/routes_$lang.json" \
    --dot "$DOC/hmodel_routes_$lang.dot" --svg "$DOC/hmodel_routes_$lang.svg" > "$OUT/routes_$lang.txt"
done
for sw in en_code en_zh; do
  "$BIN" routes -m "$RUN" --file "$OUT/sets/switch_$sw.txt" --json "$OUT/switch_$sw.json" --svg "$OUT/switch_$sw.svg" \
    > /dev/null
done
python3 experiments/report_hmodel_languages.py "$OUT" "$DOC" "$STEPS"
echo "[exp] report: $DOC/hmodel_languages.md"
