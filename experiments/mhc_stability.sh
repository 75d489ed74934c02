#!/usr/bin/env bash
# Plain residual vs HC vs mHC (n = 4) on a deep byte Transformer (T12: 24
# sub-layers), same data, steps and optimiser. Writes docs/experiments/mhc_stability.md
# with loss curves, gradient norms and the composite Amax gains (mhc.md §7).
# Usage: experiments/mhc_stability.sh [STEPS] [LR]   (default 600 steps x 8 x 256 bytes, lr 3e-3)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
STEPS=${1:-600}
LR=${2:-3e-3}
OUT=${OUT:-runs/exp_mhc}
DOC=docs/experiments
mkdir -p "$OUT" "$DOC"
bash scripts/make_corpora.sh en >/dev/null
for v in plain hc mhc; do
  run="$OUT/$v"
  if run_done "$run" "$STEPS"; then
    echo "[exp] $run done already"
  else
    rm -rf "$run"
    mkdir -p "$run"
    python3 - "$v" "$run/model.json" <<'PY'
import json, sys
v, path = sys.argv[1], sys.argv[2]
c = json.load(open("experiments/configs/deep_t12.json"))
if v != "plain":
    c["residual"] = {"type": v, "n": 4}
json.dump(c, open(path, "w"), indent=1)
PY
    echo "[exp] training $v ($STEPS steps)"
    ./build/dynarch train --config "$run/model.json" --data data/en --out "$run" --steps "$STEPS" --batch 8 \
      --seq-len 256 --lr "$LR" --dtype auto --eval-every 100 --eval-windows 32 --log-gains-every 10 --no-progress
  fi
  if [ "$v" != plain ]; then
    ./build/dynarch stability -m "$run" --file data/en/val.bin --windows 16 --seq-len 256 \
      --json "$run/stability.json" --svg "$DOC/mhc_stability_$v.svg" > "$run/stability.txt"
  fi
done
python3 experiments/report_mhc.py "$OUT" "$DOC" "$STEPS" "$LR"
echo "[exp] report: $DOC/mhc_stability.md"
