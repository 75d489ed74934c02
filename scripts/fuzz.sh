#!/usr/bin/env bash
# Build the libFuzzer targets (fuzz/, clang, ASan + UBSan) and run each for
# SECONDS (default 10; CI: 30; the reliability check: 600). Fails on any crash,
# leak, timeout or out-of-memory, and names the input that caused it.
#   bash scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="config options" bash scripts/fuzz.sh 60    # a subset
#   build-fuzz/config_fuzz CRASH_FILE                        # reproduce one input
# Seeds: fuzz/corpus/<target>/ (in git; add a regression input there for every
# bug a fuzzer finds). Inputs found along the way are kept in
# $FUZZ_BUILD_DIR/work/<target>/ so later runs start from them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-10}
B=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=${FUZZ_TARGETS:-safetensors config options corpus jsonl}
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$B/CMakeCache.txt" ]; then
  cmake -S fuzz -B "$B" "${GEN[@]}" -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" >/dev/null
fi
cmake --build "$B" -j"${JOBS:-$(nproc)}"
# Leaks are checked per input and at exit; abort_on_error turns UBSan and ASan
# reports into crashes libFuzzer records with the input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$B/artifacts"
printf '%-12s %8s %10s %8s %6s %6s %s\n' target seconds execs exec/s cov ft result
status=0
for t in $TARGETS; do
  work="$B/work/$t"
  mkdir -p "$work"
  log="$B/$t.log"
  rc=0
  # -timeout: one input (at most 8 KB; a few ms each) taking > 30 s of wall time is
  # a hang (10 s gave a false alarm on a machine with load 7); -rss_limit_mb:
  # LibTorch alone takes ~0.7 GB of the default 2 GB.
  "$B/${t}_fuzz" -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=4096 -max_len=8192 \
    -dict=fuzz/json.dict -print_final_stats=1 -artifact_prefix="$B/artifacts/$t-" \
    "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$({ grep -oE 'cov: [0-9]+' "$log" || true; } | tail -1 | cut -d' ' -f2)
  ft=$({ grep -oE 'ft: [0-9]+' "$log" || true; } | tail -1 | cut -d' ' -f2)
  result=ok
  if [ "$rc" != 0 ]; then
    result="FAILED (exit $rc)"
    status=1
  fi
  printf '%-12s %8s %10s %8s %6s %6s %s\n' "$t" "$SECONDS_PER_TARGET" "${execs:--}" "${rate:--}" "${cov:--}" \
    "${ft:--}" "$result"
  if [ "$rc" != 0 ]; then
    { grep -E 'ERROR|SUMMARY|property violated|what\(\)|runtime error|Test unit written' "$log" || true; } |
      head -8 | sed 's/^/    /'
    echo "    log: $log; reproduce: $B/${t}_fuzz <the unit written above>"
  fi
done
exit $status
