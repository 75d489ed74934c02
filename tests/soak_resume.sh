#!/usr/bin/env bash
# Kill -9 soak: N trials, each a tiny training run killed 1-3 times, at random
# moments or inside a checkpoint save (at one of its five phases, through the
# DYNARCH_KILL_IN_SAVE hook of run/checkpoint.cpp), resumed after every kill
# and finally compared with an uninterrupted run of the same options: model
# weights, optimizer state (byte for byte), config and options, and every
# step's metrics line (wall-clock fields excluded), each step exactly once.
#   tests/soak_resume.sh N [path/to/dynarch]      (CI: 3 trials; SOAK_SEED fixes the draws)
# Exit 0 only if all N trials are identical.
set -u
N=${1:?usage: soak_resume.sh N [path/to/dynarch]}
BIN=${2:-$(dirname "$0")/../build/dynarch}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
HERE=$(cd "$(dirname "$0")" && pwd)
SEED=${SOAK_SEED:-$RANDOM}
RANDOM=$SEED
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "soak_resume: $N trials, seed $SEED (SOAK_SEED=$SEED reproduces the draws), binary $BIN"

python3 - "$T/corpus.txt" <<'PY'
import random, sys
random.seed(1)
words = "the cat sat on a mat and dog ran far away home while birds sang".split()
open(sys.argv[1], "w").write(" ".join(random.choice(words) for _ in range(20000)))
PY
cat > "$T/model.json" <<'JSON'
{"arch_layout": ["m1", ["T1"], "m1"], "d_model": [32, 48], "d_intermediate": [0, 96],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 16},
 "attn_cfg": {"num_heads": [2, 2], "rotary_emb_dim": [8, 8]}}
JSON
STEPS=30 SAVE=4
TRAIN=(train --config "$T/model.json" --data "$T/corpus.txt" --steps $STEPS --batch 2 --seq-len 48
       --save-every $SAVE --eval-every 6 --eval-windows 2 --threads "${SOAK_THREADS:-1}" --no-progress)

start=$(date +%s.%N)
"$BIN" "${TRAIN[@]}" --out "$T/ref" >"$T/ref.log" 2>&1 || { cat "$T/ref.log"; echo "soak_resume: reference run failed"; exit 1; }
ref_s=$(python3 -c "import time; print(max(0.5, time.time() - $start))")

# The comparison: files byte for byte; options without "out" (the run's own path);
# metrics as the list of lines without wall-clock fields.
# Sets state_ok (weights, optimizer, config, options) and metrics_ok.
compare() {
  local run=$1 f rc=0
  state_ok=1 metrics_ok=1
  for f in model.safetensors config.json; do
    cmp -s "$T/ref/checkpoint/$f" "$run/checkpoint/$f" || { echo "    $f differs"; state_ok=0; }
  done
  python3 "$HERE/same_trainer.py" "$T/ref/checkpoint/trainer.safetensors" "$run/checkpoint/trainer.safetensors" ||
    { echo "    trainer.safetensors differs (besides metrics_bytes)"; state_ok=0; }
  python3 - "$T/ref" "$run" <<'PY' || rc=$?
import json, sys
ref, run = sys.argv[1], sys.argv[2]
def opts(d):
    o = json.load(open(d + "/checkpoint/train_options.json")); o.pop("out", None); return o
def metrics(d):
    out = []
    for line in open(d + "/metrics.jsonl"):
        j = json.loads(line)  # a torn or unparseable line is a failure too
        out.append({k: v for k, v in j.items() if not (k.endswith("_per_s") or k in ("time", "seconds"))})
    return out
bad = 0
if opts(ref) != opts(run):
    print("    train_options.json differs (besides out)"); bad |= 1
a, b = metrics(ref), metrics(run)
if a != b:
    steps = lambda m: [x.get("step") for x in m]
    print(f"    metrics.jsonl differs: {len(a)} reference lines, {len(b)} after kills")
    print(f"      reference steps: {steps(a)}")
    print(f"      resumed steps:   {steps(b)}")
    for x, y in zip(a, b):
        if x != y:
            print(f"      first differing line: {x} vs {y}"); break
    bad |= 2
sys.exit(bad)
PY
  [ $((rc & 1)) = 0 ] || state_ok=0
  [ $((rc & 2)) = 0 ] || metrics_ok=0
  [ $rc -le 3 ] || { echo "    comparison failed (exit $rc)"; state_ok=0 metrics_ok=0; }
}

has_checkpoint() { [ -f "$1/checkpoint/trainer.safetensors" ] || [ -f "$1/checkpoint.old/trainer.safetensors" ]; }

# run_killed DIR KIND: one training session (fresh or resumed) with one kill.
run_killed() {
  local run=$1 kind=$2 cmd
  if has_checkpoint "$run"; then cmd=("$BIN" train --resume "$run" --threads "${SOAK_THREADS:-1}" --no-progress)
  else cmd=("$BIN" "${TRAIN[@]}" --out "$run"); fi
  if [ "$kind" = save ]; then
    # A save at a random checkpoint step, at a random phase (run/checkpoint.cpp).
    local step=$(( SAVE * (1 + RANDOM % (STEPS / SAVE)) )) phase=$(( 1 + RANDOM % 5 ))
    echo "    kill inside the save of step $step, phase $phase"
    { DYNARCH_KILL_IN_SAVE="$step:$phase" "${cmd[@]}" >>"$run.log" 2>&1; } 2>/dev/null  # no "Killed" notice
  else
    local delay
    delay=$(python3 -c "import random; random.seed($RANDOM); print(round(random.uniform(0.05, 0.95) * $ref_s, 3))")
    echo "    kill -9 after ${delay}s"
    "${cmd[@]}" >>"$run.log" 2>&1 &
    local pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    true
  fi
  return 0
}

pass=0 state_pass=0 metrics_pass=0
for trial in $(seq 1 "$N"); do
  run="$T/t$trial"
  kills=$(( 1 + RANDOM % 3 ))
  echo "trial $trial: $kills kill(s)"
  for k in $(seq 1 $kills); do
    run_killed "$run" "$( (( RANDOM % 2 )) && echo save || echo time )"
  done
  # Finish: resume (or start over when no checkpoint was ever written).
  if has_checkpoint "$run"; then "$BIN" train --resume "$run" --threads "${SOAK_THREADS:-1}" --no-progress >>"$run.log" 2>&1
  else rm -rf "$run" && "$BIN" "${TRAIN[@]}" --out "$run" >>"$run.log" 2>&1; fi
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "  FAIL - the final resume exited $rc:"; tail -3 "$run.log" | sed 's/^/    /'
  else
    compare "$run"
    state_pass=$((state_pass + state_ok)); metrics_pass=$((metrics_pass + metrics_ok))
    if [ $state_ok = 1 ] && [ $metrics_ok = 1 ]; then
      pass=$((pass + 1)); echo "  identical"
    else
      echo "  FAIL - differs from the uninterrupted run (weights/optimizer/config/options: $( ((state_ok)) && echo same || echo DIFFER ), metrics: $( ((metrics_ok)) && echo same || echo DIFFER ))"
    fi
  fi
  rm -rf "$run" "$run.log"
done
echo "soak_resume: $pass / $N identical (weights, optimizer state, config, options: $state_pass / $N; metrics: $metrics_pass / $N)"
[ "$pass" = "$N" ]
