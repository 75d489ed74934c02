#!/usr/bin/env bash
# E1 precondition, second round (issue #19): after hmodel_reasoning_probe.sh (static T2 d 64 stayed
# at 0.500 on depths 0-3; depth 0 alone left chance after ~1000 steps), three more ways to make the
# static baseline learn, each printed as validation accuracy by step (300 fixed test items):
#   qt_last, qt_mean  question first ("Q: <question>\n<theory>", so every theory position can
#                     compare itself with the question), depth 0 only, last / mean pooling, lr 2e-3
#   cur_d0            curriculum stage 1: depth 0 continued from qt_mean (--init-from), lr 2e-3,
#                     4000 steps planned, stopped at 2000 (--stop-at) when it stayed near 0.6
#   lm -> ft_lm       a byte LM (T2 d 64) on the depth 0-3 training items written as
#                     "<theory>\nQ: <question>\nA: <label>\n" (3000 steps planned, stopped at 1000),
#                     its greedy answers on 80 test prompts, then a classifier from its weights
#                     (--init-from) on "<theory>\nQ: <question>\nA: " with last pooling, lr 1e-3
# Usage: experiments/hmodel_reasoning_probe2.sh   (env OUT (runs/e1), THREADS (1))
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/e1}
THREADS=${THREADS:-1}
BIN=./build/dynarch
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
LAST=experiments/configs/reasoning_t2_d64_last.json
sed 's/"pool": "last"/"pool": "mean"/' "$LAST" > "$OUT/mean.json"
python3 -c "import json; c = json.load(open('$LAST')); c.pop('task'); json.dump(c, open('$OUT/lm_t2_d64.json', 'w'))"
[ -f "$OUT/d0/manifest.json" ] || "$BIN" reasoning --out "$OUT/d0" --train-per-depth 40000 --test-per-depth 500 \
  --max-depth 0 --closed-world --distractor-facts 2 --distractor-rules 1 --seed 0 > /dev/null
[ -f "$OUT/d03/manifest.json" ] || "$BIN" reasoning --out "$OUT/d03" --train-per-depth 20000 --test-per-depth 250 \
  --max-depth 3 --closed-world --distractor-facts 0 --distractor-rules 1 --seed 0 > /dev/null
mkdir -p "$OUT/d0qt" "$OUT/d03p"
for s in train test; do
  python3 experiments/hmodel_e1_format.py "$OUT/d0/$s.jsonl" "$OUT/d0qt/$s.jsonl" --order qt
  python3 experiments/hmodel_e1_format.py "$OUT/d03/$s.jsonl" "$OUT/d03p/$s.jsonl" --prompt
done
python3 experiments/hmodel_e1_format.py "$OUT/d03/train.jsonl" /dev/null --lm "$OUT/lm_d03.txt"
train() {  # NAME STEP_TO_REACH ARGS...: train unless metrics already reach that step
  local name=$1 upto=$2; shift 2
  grep -q "\"step\":$upto,\"val" "$OUT/$name/metrics.jsonl" 2>/dev/null && return 0
  rm -rf "${OUT:?}/$name"
  "$BIN" --threads "$THREADS" --no-progress train --out "$OUT/$name" --seed 0 --save-every 1000 "$@" > "$OUT/$name.log" 2>&1
}
curve() { echo "$1: $(grep -o "\"step\":[0-9]*,\"$2\":[0-9.]*" "$OUT/$1/metrics.jsonl" | sed "s/\"step\"://; s/,\"$2\":/: /" | tr '\n' ' ')"; }
CLS=(--batch 32 --seq-len 512 --eval-windows 300)
train qt_last 1500 --config "$LAST" --data "$OUT/d0qt" --steps 1500 --lr 2e-3 --eval-every 100 "${CLS[@]}"
train qt_mean 1500 --config "$OUT/mean.json" --data "$OUT/d0qt" --steps 1500 --lr 2e-3 --eval-every 100 "${CLS[@]}"
train cur_d0 2000 --config "$OUT/mean.json" --data "$OUT/d0qt" --steps 4000 --stop-at 2000 --lr 2e-3 --eval-every 250 \
  --init-from "$OUT/qt_mean" "${CLS[@]}"
train lm 1000 --config "$OUT/lm_t2_d64.json" --data "$OUT/lm_d03.txt" --steps 3000 --stop-at 1000 --batch 16 --seq-len 256 \
  --lr 3e-3 --eval-every 500 --eval-windows 32
train ft_lm 600 --config "$LAST" --data "$OUT/d03p" --steps 600 --lr 1e-3 --eval-every 50 --init-from "$OUT/lm" "${CLS[@]}"
for n in qt_last qt_mean cur_d0 ft_lm; do curve $n val_acc; done
curve lm val_bpb
echo "lm greedy answers on 80 test prompts: $(python3 experiments/hmodel_e1_lm_answers.py "$OUT/lm" "$OUT/d03p/test.jsonl" 80)"
