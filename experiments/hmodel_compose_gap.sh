#!/usr/bin/env bash
# E5, closing the gap (issue #19): the composed H-Model (experiments/hmodel_compose.sh: the 8
# frozen layers of an English and a code T4 byte LM, head.init = chain within each source, T = 8)
# was worse than each source on its own language. Variants, each with 2 seeds of the
# composition stage (the two sources are trained once, seed 0):
#   fresh       fresh IN/OUT (embeddings, final norm, LM head), STEPS head-training steps (as before)
#   fresh_long  the same, LONG_STEPS steps (longer head training)
#   in_en       IN/OUT initialised from the English source (--init-from src_en: embeddings, final
#               norm, LM head), STEPS steps: the input the English layers were trained on
#   in_code     IN/OUT from the code source
#   in_en_w     IN/OUT from the English source, each source's chain reproduced at the start:
#               routing.norm = weighted (a node's input is the weighted mean of its messages, so a
#               source's first layer reads the embedding at full scale, where count scales it by the
#               IN weight, ~0.45; hmodel_aggregation.md) and chain bias init_c = 6 (j -> j+1 weight
#               0.98 instead of 0.72); OUT then averages the two chains' last layers
#   in_en_w_long  the same, LONG_STEPS steps
# Every variant starts its routing on each source's own chain (head.init = chain; IN -> the first
# layer of each source, the last layer of each -> OUT). bpb on the first 64 KiB of each source's
# validation file; mixed corpus = alternating 4 KiB blocks of en and code training text.
# Writes docs/experiments/hmodel_compose_gap.{md,json}.
# T = 4 (each source's chain IN -> 4 layers -> OUT fits in 4 iterations; hmodel_compose.sh used 8,
# which doubles the cost: every node runs at every iteration).
# Usage: experiments/hmodel_compose_gap.sh  (env SRC_STEPS 400, STEPS 100, LONG_STEPS 300, T 4,
#        SEEDS "1 2", THREADS 1, OUT runs/exp_hm_compose_gap, VARIANTS "fresh fresh_long in_en in_code in_en_w in_en_w_long")
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
SRC_STEPS=${SRC_STEPS:-400}
STEPS=${STEPS:-100}
LONG_STEPS=${LONG_STEPS:-300}
T=${T:-4}
SEEDS=${SEEDS:-"1 2"}
THREADS=${THREADS:-1}
VARIANTS=${VARIANTS-"fresh fresh_long in_en in_code in_en_w in_en_w_long"}
OUT=${OUT:-runs/exp_hm_compose_gap}
DOC=docs/experiments
BIN=./build/dynarch
mkdir -p "$OUT" "$DOC"
export OMP_NUM_THREADS=$THREADS
[ -f data/en/train.bin ] && [ -f data/code/train.bin ] || bash scripts/make_corpora.sh en code >/dev/null
if [ ! -f "$OUT/mixed.bin" ]; then
  python3 - "$OUT/mixed.bin" <<'PY'
import sys
en, code = (open(f"data/{l}/train.bin", "rb").read(8 << 20) for l in ("en", "code"))
B = 4096
with open(sys.argv[1], "wb") as f:
    for i in range(0, min(len(en), len(code)) - B, B):
        f.write(en[i:i + B]); f.write(code[i:i + B])
PY
fi
for lang in en code; do head -c 65536 "data/$lang/val.bin" > "$OUT/val_$lang.txt"; done
evals() {  # RUN: bpb on both validation files
  for lang in en code; do
    [ -f "$1/eval_$lang.txt" ] || "$BIN" eval -m "$1" --file "$OUT/val_$lang.txt" --threads "$THREADS" --no-progress \
      > "$1/eval_$lang.txt"
  done
}
for src in en code; do
  run="$OUT/src_$src"
  if ! run_done "$run" "$SRC_STEPS"; then
    rm -rf "$run"
    echo "[exp] training the $src source ($SRC_STEPS steps)"
    "$BIN" train --config experiments/configs/src_t4.json --data "data/$src" --out "$run" --steps "$SRC_STEPS" \
      --batch 8 --seq-len 256 --lr 3e-3 --eval-every 0 --save-every 100000 --threads "$THREADS" --no-progress
  fi
  evals "$run"
done
cat > "$OUT/composed.json" <<JSON
{"arch_layout": ["T8"], "d_model": [128], "d_intermediate": [384],
 "attn_cfg": {"num_heads": [4], "rotary_emb_dim": [16], "window_size": [-1]},
 "hmodel": {"T": $T, "head": {"init": "chain"},
   "nodes": [{"at": [1, 2, 3, 4], "from": "$OUT/src_en", "layers": [0, 1, 2, 3], "freeze": true},
             {"at": [5, 6, 7, 8], "from": "$OUT/src_code", "layers": [0, 1, 2, 3], "freeze": true}]}}
JSON
sed 's/"head": {"init": "chain"}/"routing": {"norm": "weighted"}, "head": {"init": "chain", "init_c": 6}/' "$OUT/composed.json" \
  > "$OUT/composed_w.json"
for seed in $SEEDS; do
  for v in $VARIANTS; do
    run="$OUT/${v}_s$seed"
    steps=$STEPS extra=() cfg=$OUT/composed.json
    case $v in
      fresh) ;;
      fresh_long) steps=$LONG_STEPS ;;
      in_en) extra=(--init-from "$OUT/src_en") ;;
      in_code) extra=(--init-from "$OUT/src_code") ;;
      in_en_w) extra=(--init-from "$OUT/src_en") cfg=$OUT/composed_w.json ;;
      in_en_w_long) extra=(--init-from "$OUT/src_en") cfg=$OUT/composed_w.json steps=$LONG_STEPS ;;
      *) echo "unknown variant $v" >&2; exit 2 ;;
    esac
    if ! run_done "$run" "$steps"; then
      rm -rf "$run"
      echo "[exp] $v seed $seed ($steps steps, nodes frozen)"
      start=$(date +%s)
      "$BIN" train --config "$cfg" --data "$OUT/mixed.bin" --out "$run" --steps "$steps" --batch 8 \
        --seq-len 256 --lr 3e-3 --seed "$seed" --eval-every 0 --save-every 100000 --threads "$THREADS" \
        --no-progress "${extra[@]}"
      echo $(( $(date +%s) - start )) > "$run/train_seconds"
    fi
    evals "$run"
    [ -f "$run/routes_en.txt" ] || for lang in en code; do
      "$BIN" routes -m "$run" --file "$OUT/val_$lang.txt" --max-bytes 4096 --json "$run/routes_$lang.json" \
        --threads "$THREADS" --no-progress > "$run/routes_$lang.txt"
    done
  done
done
python3 experiments/report_hmodel_compose_gap.py "$OUT" "$DOC" "$SRC_STEPS" "$STEPS" "$LONG_STEPS" "$SEEDS" "$VARIANTS" "$T"
echo "[exp] report: $DOC/hmodel_compose_gap.md"
