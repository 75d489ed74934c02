#!/usr/bin/env bash
# E4 (hmodel.md §13) and the aggregation check of issue #19 on one small task: a per-token
# H-Model byte LM on English (pool T2f2 = 2 attention + 2 SwiGLU nodes, d 64, T = 4) against
# the plain T2f2 stack. Sweeps: alpha in {0.5, 1, 2, 4, 8} and a linear schedule 1 -> 8;
# T in {2, 4, 8}; lambda_depth in {0, 0.1, 1}; aggregation norm count (the paper's rule,
# default) vs weighted (norm-preserving weighted mean). Every variant with SEEDS seeds.
# Per run: final val bpb, seconds per step, and from `dynarch routes` on 1 KiB of
# validation text: expected depth, mean routing entropy, RMS of node inputs/outputs per
# iteration. Writes docs/experiments/hmodel_sweeps.md and hmodel_aggregation.md (+ SVGs).
# Usage: experiments/hmodel_sweeps.sh [STEPS]   (default 300 steps x 8 x 128 bytes)
#   env: SEEDS ("0 1"), JOBS (2 parallel runs, 1 thread each), OUT (runs/exp_hm_sweeps)
set -euo pipefail
cd "$(dirname "$0")/.."
source experiments/lib.sh
STEPS=${1:-300}
SEEDS=${SEEDS:-"0 1"}
JOBS=${JOBS:-2}
OUT=${OUT:-runs/exp_hm_sweeps}
DOC=docs/experiments
BIN=./build/dynarch
[ -x "$BIN" ] || bash scripts/build.sh
bash scripts/make_corpora.sh en >/dev/null
mkdir -p "$OUT" "$DOC"
head -c 1024 data/en/val.bin > "$OUT/sample.txt"
VARIANTS="plain count weighted a0.5 a2 a4 a8 asched T2 T8 ld0.1 ld1"
one() {  # one VARIANT SEED
  local v=$1 seed=$2 run="$OUT/$1_s$2"
  if run_done "$run" "$STEPS" && [ -f "$run/routes.json" -o "$v" = plain ]; then return; fi
  rm -rf "$run"; mkdir -p "$run"
  python3 - "$v" "$run/model.json" "$STEPS" <<'PY'
import json, sys
v, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = {"arch_layout": ["T2f2"], "d_model": [64], "d_intermediate": [128],
     "attn_cfg": {"num_heads": [4], "rotary_emb_dim": [16], "window_size": [-1]}, "hmodel": {"T": 4}}
h = c["hmodel"]
if v == "plain": del c["hmodel"]
elif v == "weighted": h["routing"] = {"norm": "weighted"}
elif v == "asched": h["routing"] = {"alpha": {"schedule": "linear", "start": 1, "end": 8, "steps": steps}}
elif v.startswith("a"): h["routing"] = {"alpha": float(v[1:])}
elif v.startswith("T"): h["T"] = int(v[1:])
elif v.startswith("ld"): h["loss"] = {"lambda_depth": float(v[2:])}
json.dump(c, open(path, "w"), indent=1)
PY
  local start; start=$(date +%s.%N)
  OMP_NUM_THREADS=1 "$BIN" train --config "$run/model.json" --data data/en --out "$run" --steps "$STEPS" --batch 8 \
    --seq-len 128 --lr 3e-3 --seed "$seed" --eval-every "$STEPS" --eval-windows 64 --save-every "$STEPS" \
    --threads 1 --no-progress > "$run/train.log" 2>&1
  python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$start" > "$run/train_seconds"
  if [ "$v" != plain ]; then
    OMP_NUM_THREADS=1 "$BIN" routes -m "$run" --file "$OUT/sample.txt" --json "$run/routes.json" \
      --dot "$run/routes.dot" --svg "$run/routes.svg" --threads 1 > "$run/routes.txt" 2>&1
  fi
  echo "[exp] $v seed $seed done"
}
export -f one run_done
export OUT STEPS BIN
for s in $SEEDS; do for v in $VARIANTS; do echo "$v $s"; done; done | xargs -P "$JOBS" -L 1 bash -c 'one $0 $1'
python3 experiments/report_hmodel_sweeps.py "$OUT" "$DOC" "$STEPS" "$SEEDS"
echo "[exp] reports: $DOC/hmodel_sweeps.md $DOC/hmodel_aggregation.md"
