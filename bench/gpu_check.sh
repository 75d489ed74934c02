#!/usr/bin/env bash
# Issue #16's GPU check, in ONE device call (../shared/gpu/README.md):
#   here, once:  bash ../shared/gpu/pack.sh        (fills .gpu-deps/)
#   device call: carry [".gpu-deps"], command `bash bench/gpu_check.sh`, timeout_s ~540
# Steps, each under its own time limit; the first failure stops the script with a
# line saying which step and why (exit 1). Prints one JSON line per step and per
# benchmark case. Fits in about 8 minutes on the H200 machine (16 cores).
#   1. build: .gpu-deps/build.sh with -DDYNARCH_CUDA=ON (CUDA LibTorch 2.x) into $BUILD_DIR
#   2. the CUDA gtests (Cuda*, CausalConv*): every one must run (a skip is a failure here)
#   3. bench_cuda_kernels, bench_cuda_mhc: each CUDA kernel vs its tensor-op reference on the GPU;
#      bench_cuda_optim: one optimizer step (clip + AdamW) of configs/hnet_bench.json's parameters, fused vs ops
#   4. the model benchmark of the issue's table (`dynarch bench --device cuda`), when the
#      build's `dynarch bench` has --device (the device plumbing of issue #16)
# GPU_CHECK_SKIP_BUILD=1 reuses an existing $BUILD_DIR (a second call on a warm machine).
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

# 1. build
if [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  t=$(date +%s)
  CMAKE_ARGS="-DDYNARCH_CUDA=ON ${CMAKE_ARGS:-}" timeout 330 bash .gpu-deps/build.sh > /tmp/gpu_check_build.log 2>&1 ||
    { tail -40 /tmp/gpu_check_build.log; die build "$(elapsed $t)" "build failed or passed 330 s (log above)"; }
  say build true "$(elapsed $t)"
fi
P=/tmp/prefix/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P/openblas-openmp:$P${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -x "$B/dynarch_tests" ] || die build 0 "$B/dynarch_tests missing"

# 2. CUDA tests: all must run and pass.
t=$(date +%s)
timeout 150 "$B/dynarch_tests" --gtest_filter='Cuda*:CausalConv*' --gtest_brief=1 \
  --gtest_output=json:/tmp/gpu_check_tests.json > /tmp/gpu_check_tests.log 2>&1
rc=$?
cat /tmp/gpu_check_tests.log | tail -40
[ $rc -eq 0 ] || die cuda_tests "$(elapsed $t)" "dynarch_tests exited $rc (124: timed out)"
skipped=$(grep -c '"result": "SKIPPED"' /tmp/gpu_check_tests.json || true)
ran=$(grep -c '"result": "COMPLETED"' /tmp/gpu_check_tests.json || true)
[ "$skipped" = 0 ] || die cuda_tests "$(elapsed $t)" "$skipped CUDA tests skipped: the CUDA build does not see the GPU"
say cuda_tests true "$(elapsed $t)" "$ran tests ran"

# 3. kernel benchmarks (JSON lines of their own).
t=$(date +%s)
timeout 150 "$B/bench_cuda_kernels" --reps 5 || die bench_cuda_kernels "$(elapsed $t)" "exit $? (124: timed out)"
say bench_cuda_kernels true "$(elapsed $t)"
t=$(date +%s)
timeout 60 "$B/bench_cuda_mhc" --reps 5 || die bench_cuda_mhc "$(elapsed $t)" "exit $? (124: timed out)"
say bench_cuda_mhc true "$(elapsed $t)"
t=$(date +%s)
timeout 60 "$B/bench_cuda_optim" --config configs/hnet_bench.json --reps 20 ||
  die bench_cuda_optim "$(elapsed $t)" "exit $? (124: timed out)"
say bench_cuda_optim true "$(elapsed $t)"

# 4. model benchmark on the device, once the build has --device.
t=$(date +%s)
if "$B/dynarch" bench --help 2>&1 | grep -q -- '--device'; then
  timeout 150 "$B/dynarch" bench --device cuda --config configs/hnet_bench.json --batch 16 --seq-len 4096 --steps 4 ||
    die model_bench "$(elapsed $t)" "dynarch bench --device cuda: exit $? (124: timed out)"
  say model_bench true "$(elapsed $t)"
  # The issue's mHC overhead row: T12 d1024, n = 4, 8 x 2048, bf16, plain vs mHC in paired rounds.
  t=$(date +%s)
  timeout 150 "$B/bench_mhc" --device cuda --config configs/bench_t12_d1024.json --n 4 --batch 8 --seq-len 2048 \
    --dtype bf16 --variants plain,mhc --steps 3 --rounds 5 || die mhc_overhead "$(elapsed $t)" "bench_mhc: exit $? (124: timed out)"
  say mhc_overhead true "$(elapsed $t)"
else
  say model_bench true 0 "skipped: this build's dynarch bench has no --device"
fi
echo "gpu_check: all steps passed"
