#!/usr/bin/env bash
# Issue #16's GPU check (../shared/gpu/README.md):
#   here, once:  bash ../shared/gpu/pack.sh        (fills .gpu-deps/)
#   device call 1: carry [".gpu-deps"], `bash bench/gpu_check.sh`, timeout_s ~560
#                  (phases build,tests,kernels: about 7 minutes)
#   device call 2, at once (the machine stays warm ~30 s): `GPU_CHECK_SKIP_BUILD=1
#                  GPU_CHECK_PHASES=models bash bench/gpu_check.sh`, timeout_s ~400
# GPU_CHECK_PHASES (comma list, default build,tests,kernels; "all" = every phase):
#   build:   .gpu-deps/build.sh with -DDYNARCH_CUDA=ON (CUDA LibTorch 2.x) into $BUILD_DIR
#            (skipped with GPU_CHECK_SKIP_BUILD=1: a warm machine's earlier build)
#   tests:   the CUDA gtests (Cuda*, CausalConv*): every one must run (a skip is a failure here)
#   kernels: bench_cuda_kernels, bench_cuda_mhc (each CUDA kernel vs its tensor-op reference),
#            bench_cuda_optim (one clip + AdamW step of configs/hnet_bench.json, fused vs ops)
#   models:  the issue's table with `dynarch bench --device cuda` (bf16 training bytes/s, MFU,
#            peak memory; decode at batch 1 and 64 on real text) and bench_mhc's overhead row
# A failed build stops the script; a failed later step is reported (which step and why) and
# the rest still run; exit 1 if any failed. One JSON line per step and per benchmark case.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-/tmp/build}
export BUILD_DIR=$B
say() { echo "{\"gpu_check\": \"$1\", \"ok\": $2, \"seconds\": $3${4:+, \"detail\": \"$4\"}}"; }
die() { say "$1" false "$2" "$3"; echo "gpu_check: FAILED at step '$1': $3" >&2; exit 1; }
elapsed() { echo $(( $(date +%s) - $1 )); }

t=$(date +%s)
[ -f .gpu-deps/build.sh ] || die setup 0 ".gpu-deps/build.sh missing: run bash ../shared/gpu/pack.sh here and carry .gpu-deps"
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || die setup 0 "no GPU visible (nvidia-smi -L failed)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

PHASES=${GPU_CHECK_PHASES:-build,tests,kernels}
[ "$PHASES" = all ] && PHASES=build,tests,kernels,models
phase() { [[ ",$PHASES," == *",$1,"* ]]; }

# 1. build
if phase build && [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  t=$(date +%s)
  CMAKE_ARGS="-DDYNARCH_CUDA=ON ${CMAKE_ARGS:-}" timeout 330 bash .gpu-deps/build.sh > /tmp/gpu_check_build.log 2>&1 ||
    { tail -40 /tmp/gpu_check_build.log; die build "$(elapsed $t)" "build failed or passed 330 s (log above)"; }
  say build true "$(elapsed $t)"
fi
P=/tmp/prefix/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P/openblas-openmp:$P${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -x "$B/dynarch_tests" ] || die build 0 "$B/dynarch_tests missing"

# From here a failing step is reported and the next one still runs: one device call should
# bring back every figure it can. The exit status is 1 if any step failed.
failed=""
fail() { say "$1" false "$2" "$3"; echo "gpu_check: step '$1' FAILED: $3" >&2; failed="$failed $1"; }
# step NAME LIMIT_S CMD...: runs CMD under a time limit, reports it.
step() {
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@"
  local rc=$?
  if [ $rc -eq 0 ]; then say "$name" true "$(elapsed $t0)"; else fail "$name" "$(elapsed $t0)" "exit $rc (124: timed out after $limit s)"; fi
}

# 2. CUDA tests: all must run and pass.
if phase tests; then
t=$(date +%s)
timeout 150 "$B/dynarch_tests" --gtest_filter='Cuda*:CausalConv*' --gtest_brief=1 \
  --gtest_output=json:/tmp/gpu_check_tests.json > /tmp/gpu_check_tests.log 2>&1
rc=$?
grep -E '^\[ |FAILED|Failure|error' /tmp/gpu_check_tests.log | head -120  # measured errors and failures
tail -5 /tmp/gpu_check_tests.log
skipped=$(grep -c '"result": "SKIPPED"' /tmp/gpu_check_tests.json 2>/dev/null || true)
ran=$(grep -c '"result": "COMPLETED"' /tmp/gpu_check_tests.json 2>/dev/null || true)
if [ $rc -ne 0 ]; then
  fail cuda_tests "$(elapsed $t)" "dynarch_tests exited $rc (124: timed out), $ran tests ran"
elif [ "${skipped:-0}" != 0 ]; then
  fail cuda_tests "$(elapsed $t)" "$skipped CUDA tests skipped: the CUDA build does not see the GPU"
else
  say cuda_tests true "$(elapsed $t)" "$ran tests ran"
fi
fi

# 3. kernel benchmarks (JSON lines of their own).
if phase kernels; then
  step bench_cuda_kernels 150 "$B/bench_cuda_kernels" --reps 5
  step bench_cuda_mhc 60 "$B/bench_cuda_mhc" --reps 5
  step bench_cuda_optim 60 "$B/bench_cuda_optim" --config configs/hnet_bench.json --reps 20
fi

# 4. the issue's model rows, bf16 (docs/benchmarks.md records them). Real text for the
# decode rows: the project's own docs (the corpus is not on the GPU machine).
if phase models; then
  cat docs/*.md README.md > /tmp/gpu_check_text.txt
  bench() { step "$1" "$2" "$B/dynarch" bench --device cuda --dtype bf16 "${@:3}"; }
  bench hnet_bench_16x4096 120 --config configs/hnet_bench.json --batch 16 --seq-len 4096 --steps 4 --decode-bytes 0
  bench isotropic_t12_d1024_8x8192 150 --config configs/bench_t12_d1024.json --batch 8 --seq-len 8192 --steps 3 \
    --decode-bytes 0
  bench hnet_1stage_L_8x8192 150 --config configs/hnet_1stage_L.json --batch 8 --seq-len 8192 --steps 3 \
    --decode-bytes 0 --data /tmp/gpu_check_text.txt
  bench hnet_1stage_L_decode_b1 90 --config configs/hnet_1stage_L.json --steps 0 --decode-bytes 256 --decode-batch 1 \
    --data /tmp/gpu_check_text.txt
  bench hnet_1stage_L_decode_b64 90 --config configs/hnet_1stage_L.json --steps 0 --decode-bytes 128 --decode-batch 64 \
    --data /tmp/gpu_check_text.txt
  # The mHC overhead row: T12 d1024, n = 4, 8 x 2048, bf16, plain vs mHC in paired rounds.
  step mhc_overhead 150 "$B/bench_mhc" --device cuda --config configs/bench_t12_d1024.json --n 4 --batch 8 \
    --seq-len 2048 --dtype bf16 --variants plain,mhc --steps 3 --rounds 5
fi
[ -z "$failed" ] || { echo "gpu_check: FAILED steps:$failed" >&2; exit 1; }
echo "gpu_check: all steps passed"
