#!/usr/bin/env bash
# Data-parallel training over c10d Gloo on loopback (issue #17): 2 ranks x B/2
# equal 1 rank x B, ZeRO-1 on/off, resume across world sizes, a killed worker,
# bad distributed environments. Usage: dist_test.sh path/to/dynarch
set -u
BIN=${1:?usage: dist_test.sh path/to/dynarch}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
export DYNARCH_DIST_TIMEOUT=10 DYNARCH_THREADS=1
source "$HERE/harness.sh"
# Losses agree to ~1e-7 (fp32 sums in another order); weights are compared
# relative to each tensor's largest entry with 3e-5, because Adam divides by
# sqrt(v): a gradient entry near zero whose value moves by one ulp moves its
# update by a visible fraction of the learning rate.
same() {  # same NAME RUN_A RUN_B [compare_runs options]: losses, weights, optimizer state
  local name=$1 a=$2 b=$3; shift 3
  if /usr/bin/python3 "$HERE/compare_runs.py" "$a" "$b" --state --weight-tol 3e-5 "$@" >"$T/cmp" 2>&1; then ok "$name: $(head -1 "$T/cmp")"
  else cp "$T/cmp" "$T/err"; bad "$name"; fi
}

tiny_corpus "$T/corpus.txt" 0
cat > "$T/iso.json" <<'JSON'
{"arch_layout": ["T1m1"], "d_model": [32], "d_intermediate": [64],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8}, "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]}}
JSON
cat > "$T/hnet.json" <<'JSON'
{"arch_layout": ["m1", ["T1"], "m1"], "d_model": [32, 48], "d_intermediate": [0, 96],
 "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 8, "headdim": 16},
 "attn_cfg": {"num_heads": [2, 4], "rotary_emb_dim": [8, 8], "window_size": [-1, -1]}}
JSON
cat > "$T/mhc.json" <<'JSON'
{"arch_layout": ["T1m1"], "d_model": [32], "d_intermediate": [64],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
 "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]}, "residual": {"type": "mhc", "n": 4}}
JSON
COMMON=(--data "$T/corpus.txt" --steps 6 --seq-len 32 --eval-every 3 --eval-windows 4 --no-progress)
run1() { "$BIN" train --config "$T/$1.json" "${COMMON[@]}" --batch 4 --out "$T/$2" "${@:3}"; }
run2() { "$BIN" launch --nproc 2 train --config "$T/$1.json" "${COMMON[@]}" --batch 2 --out "$T/$2" "${@:3}"; }

# 1. Two ranks with half the batch each train exactly what one rank with the whole batch trains.
for m in iso hnet mhc; do
  expect_ok "$m: 1 rank x batch 4" run1 $m $m.1
  expect_ok "$m: 2 ranks x batch 2" run2 $m $m.2
  grep -q "optimizer state values per rank" "$T/err" && ok "$m: the shard line is printed" || bad "$m: no shard line"
  same "$m: 2 x B/2 = 1 x B" "$T/$m.1" "$T/$m.2"
done
grep -q '"stage0_F"' "$T/hnet.2/metrics.jsonl" && ok "H-Net metrics reduced over ranks" || bad "no stage0_F"

# 2. ZeRO-1: same weights and state as unsharded; each rank holds about half the state.
expect_ok "iso: 2 ranks, ZeRO off" run2 iso iso.nozero --zero 0
same "ZeRO on = off (bitwise)" "$T/iso.2" "$T/iso.nozero" --loss-tol 0 --weight-tol 0
run2 iso iso.z2 >/dev/null 2>"$T/err"
line=$(grep -o "per rank: [0-9]* / [0-9]*" "$T/err"); a=$(echo "$line" | awk '{print $3}'); b=$(echo "$line" | awk '{print $5}')
run2 iso iso.nz2 --zero 0 >/dev/null 2>"$T/err"
full=$(grep -o "per rank: [0-9]*" "$T/err" | awk '{print $3}')
echo "       state per rank: ZeRO on $a + $b, off $full each"
[ -n "$a" ] && [ $((a + b)) = "$full" ] && [ $((2 * a)) -le $((full * 11 / 10)) ] && [ $((2 * b)) -le $((full * 11 / 10)) ] \
  && ok "ZeRO-1 halves the optimizer state per rank" || bad "ZeRO-1 shard sizes ($line vs $full)"

# 3. Resume across world sizes keeps the losses of an uninterrupted run.
expect_ok "2 ranks, stopped at step 3" run2 iso r21 --stop-at 3
expect_ok "resumed with 1 rank" "$BIN" train --resume "$T/r21" --no-progress
grep -q "world size 2 -> 1" "$T/err" && ok "resume reports the world change" || bad "no world change line"
same "resume 2 -> 1 = uninterrupted" "$T/iso.1" "$T/r21"
expect_ok "1 rank, stopped at step 3" run1 iso r12 --stop-at 3
expect_ok "resumed with 2 ranks" "$BIN" launch --nproc 2 train --resume "$T/r12" --no-progress
same "resume 1 -> 2 = uninterrupted" "$T/iso.1" "$T/r12"

# 4. A worker killed with -9: the other stops within the timeout naming it; resume continues.
KILL=(launch --nproc 2 train --config "$T/iso.json" --data "$T/corpus.txt" --steps 100000 --seq-len 32 --batch 2 --save-every 5 --eval-every 0 --no-progress --out "$T/k")
"$BIN" "${KILL[@]}" >"$T/kout" 2>"$T/kerr" &
LPID=$!
for _ in $(seq 600); do [ -f "$T/k/checkpoint/trainer.safetensors" ] && break; sleep 0.1; done
victim=""
for p in $(pgrep -P $LPID); do grep -qz '^RANK=1$' /proc/$p/environ 2>/dev/null && victim=$p; done
if [ -n "$victim" ]; then
  kill -9 "$victim"; t0=$(date +%s)
  wait $LPID; code=$?; dt=$(( $(date +%s) - t0 ))
  cp "$T/kerr" "$T/err"
  [ $code -ne 0 ] && ok "launch exits non-zero ($code) after kill -9 of rank 1" || bad "launch exit 0 after a kill"
  [ $dt -le $((DYNARCH_DIST_TIMEOUT + 5)) ] && ok "stopped ${dt}s after the kill (timeout ${DYNARCH_DIST_TIMEOUT}s)" || bad "took ${dt}s to stop"
  grep -q "\[rank 0\].*rank 1 is gone" "$T/kerr" && ok "rank 0 names rank 1" || bad "rank 0 does not name rank 1"
  grep -q "launch: failed: rank 1 was killed by signal 9" "$T/kerr" && ok "launch names the killed rank" || bad "launch message"
  s=$(grep -o '"step":[0-9]*' "$T/k/checkpoint/../metrics.jsonl" | tail -1)
  ck=$(/usr/bin/python3 -c "import json,struct,sys; f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]; print(json.loads(f.read(n))['__metadata__']['trainer'])" "$T/k/checkpoint/trainer.safetensors" 2>/dev/null | grep -o '"step": *[0-9]*' | grep -o '[0-9]*$')
  expect_ok "resume after the kill" "$BIN" launch --nproc 2 train --resume "$T/k" --stop-at $((ck + 5)) --no-progress
  n=$(grep -c '"loss"' "$T/k/metrics.jsonl")
  [ "$n" = $((ck + 5)) ] && ok "metrics hold steps 1..$((ck + 5)) once each after the resume" || bad "metrics hold $n step lines, want $((ck + 5)) (last before kill: $s)"
else
  bad "no worker of rank 1 found to kill"; kill $LPID
fi

# 5. Bad environments and launch options are clear errors.
TR=(train --config "$T/iso.json" "${COMMON[@]}" --batch 2 --out "$T/bad")
expect_fail "rank outside the world" "outside the world" env RANK=2 WORLD_SIZE=2 "$BIN" "${TR[@]}"
expect_fail "half-set environment" "WORLD_SIZE is not set" env RANK=0 "$BIN" "${TR[@]}"
expect_fail "port out of range" "MASTER_PORT=70000" env RANK=0 WORLD_SIZE=2 MASTER_PORT=70000 "$BIN" "${TR[@]}"
expect_fail "port not a number" 'MASTER_PORT="x1"' env RANK=0 WORLD_SIZE=2 MASTER_PORT=x1 "$BIN" "${TR[@]}"
port=$(/usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
expect_fail "nobody at MASTER_ADDR:PORT" "cannot reach the rendezvous at 127.0.0.1:$port" \
  env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port DYNARCH_DIST_TIMEOUT=3 "$BIN" "${TR[@]}"
expect_fail "unknown master host" "no-such-host.invalid" \
  env RANK=1 WORLD_SIZE=2 MASTER_ADDR=no-such-host.invalid MASTER_PORT=$port DYNARCH_DIST_TIMEOUT=3 "$BIN" "${TR[@]}"
port=$(/usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
env RANK=1 WORLD_SIZE=2 MASTER_PORT=$port "$BIN" "${TR[@]}" --lr 0.01 >/dev/null 2>"$T/err1" &
expect_fail "mismatched options between ranks" "rank 1 runs another set of training options" \
  env RANK=0 WORLD_SIZE=2 MASTER_PORT=$port "$BIN" "${TR[@]}"
wait
expect_fail "launch: --nnodes 2 without --master" "needs --master" "$BIN" launch --nnodes 2 --nproc 1 train --resume x
expect_fail "launch: node rank outside" "--node-rank 2" "$BIN" launch --nnodes 2 --node-rank 2 --master h:1 train --resume x
expect_fail "launch: bad --master" "expected ADDR:PORT" "$BIN" launch --nnodes 2 --master nohost train --resume x
expect_fail "launch: a worker's error fails the launch" "exited with code 2" \
  "$BIN" launch --nproc 2 train --config "$T/iso.json" --data "$T/nope.txt" --out "$T/bad2" --no-progress
grep -q "\[rank 1\] error: .*nope.txt" "$T/err" && ok "worker errors carry their rank prefix" || bad "no rank prefix on errors"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
