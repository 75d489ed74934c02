#!/usr/bin/env bash
# The unit and CLI tests again, built with AddressSanitizer + UndefinedBehaviorSanitizer
# (gcc, -DDYNARCH_SANITIZE=ON, no benchmarks) in build-asan/. LibTorch is not
# instrumented: ASan checks our code's memory accesses, UBSan our arithmetic.
# CI runs it after scripts/test.sh (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-asan}
bash scripts/build.sh -DDYNARCH_SANITIZE=ON -DDYNARCH_BENCH=OFF
# detect_leaks: on, with scripts/lsan.supp for what LibTorch and OpenMP keep at exit.
# allocator_may_return_null: a huge allocation fails as it does without ASan (LibTorch
# then throws, which tests of hostile sizes expect) instead of aborting the process.
# halt_on_error: the first UBSan report fails the test (scripts/ubsan.supp lists exceptions).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$PWD/scripts/ubsan.supp}
cd "$BUILD_DIR"
# The Python self-tests and the layout check do not run our C++; the plain run covers them.
ctest --output-on-failure -E '^(convert_hnet|corpora|layout)$' "$@"
