#!/usr/bin/env bash
# Data-parallel scaling on this host (issue #17): training bytes/s of the H-Net
# bench config for 1 worker x 1 thread, 1 worker x 2 threads and 2 workers x 1
# thread (dynarch launch, Gloo on loopback), interleaved over ROUNDS rounds, in
# one run; prints the medians and the ratios to 1 x 1.
# Usage: bench/dp_scaling.sh [BIN] [STEPS] [ROUNDS]   (corpus: data/en, see scripts/main_job.sh)
set -euo pipefail
BIN=${1:-build/dynarch}; STEPS=${2:-12}; ROUNDS=${3:-3}
CFG=configs/hnet_bench.json; DATA=${DATA:-data/en}; B=${BATCH:-8}; L=${SEQ:-1024}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
# bytes/s of the steps after the first two (warm-up), from rank 0's metrics
rate() { /usr/bin/python3 -c "
import json,sys,statistics
r=[json.loads(l)['bytes_per_s'] for l in open(sys.argv[1]) if 'bytes_per_s' in l][2:]
print(statistics.median(r))" "$1/metrics.jsonl"; }
declare -A R
for i in $(seq "$ROUNDS"); do
  "$BIN" train --config $CFG --data "$DATA" --steps "$STEPS" --batch $B --seq-len $L --eval-every 0 --eval-windows 1 --threads 1 --no-progress --out "$T/a$i" >/dev/null 2>&1
  R[1x1]+=" $(rate "$T/a$i")"
  "$BIN" train --config $CFG --data "$DATA" --steps "$STEPS" --batch $B --seq-len $L --eval-every 0 --eval-windows 1 --threads 2 --no-progress --out "$T/b$i" >/dev/null 2>&1
  R[1x2]+=" $(rate "$T/b$i")"
  DYNARCH_THREADS=1 "$BIN" launch --nproc 2 train --config $CFG --data "$DATA" --steps "$STEPS" --batch $((B / 2)) --seq-len $L --eval-every 0 --eval-windows 1 --no-progress --out "$T/c$i" >/dev/null 2>&1
  R[2x1]+=" $(rate "$T/c$i")"
done
/usr/bin/python3 - "${R[1x1]}" "${R[1x2]}" "${R[2x1]}" <<'PY'
import statistics, sys
names = ["1 worker x 1 thread", "1 worker x 2 threads", "2 workers x 1 thread"]
med = [statistics.median(map(float, a.split())) for a in sys.argv[1:]]
for n, m, a in zip(names, med, sys.argv[1:]):
    print(f"{n:22s} {m:9.0f} B/s  ({m / med[0]:.2f}x)   runs: {a.strip()}")
PY
