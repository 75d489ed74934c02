#!/usr/bin/env bash
# E3 (hmodel.md §13): the "survival mechanism". The per-token H-Model byte LM of E2
# (experiments/configs/hm_lang.json) trains on English with the self-routing
# regulariser lambda_self in {0, 0.01, 0.1} and with self-loops forbidden
# (allow_self = false); self-loop mass per layer over training and the task metric
# go to docs/experiments/hmodel_survival.md.
# Usage: experiments/hmodel_survival.sh [STEPS]   (default 400 steps x 8 x 256 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
STEPS=${1:-400}
OUT=${OUT:-runs/exp_hm_survival}
DOC=docs/experiments
BIN=./build/dynarch
mkdir -p "$OUT" "$DOC"
bash scripts/make_corpora.sh en >/dev/null
for v in self0 self0.01 self0.1 noself; do
  run="$OUT/$v"
  if run_done "$run" "$STEPS"; then
    echo "[exp] $run done already"; continue
  fi
  rm -rf "$run"; mkdir -p "$run"
  python3 - "$v" "$run/model.json" <<'PY'
import json, sys
v, path = sys.argv[1], sys.argv[2]
c = json.load(open("experiments/configs/hm_lang.json"))
if v == "noself":
    c["hmodel"]["routing"] = {"allow_self": False}
else:
    c["hmodel"]["loss"] = {"lambda_self": float(v[4:])}
json.dump(c, open(path, "w"), indent=1)
PY
  echo "[exp] training $v ($STEPS steps)"
  "$BIN" train --config "$run/model.json" --data data/en --out "$run" --steps "$STEPS" --batch 8 --seq-len 256 \
    --lr 2e-3 --dtype auto --eval-every 100 --eval-windows 48 --no-progress
done
python3 experiments/report_hmodel_survival.py "$OUT" "$DOC" "$STEPS"
echo "[exp] report: $DOC/hmodel_survival.md"
