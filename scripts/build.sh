#!/usr/bin/env bash
# Configure and build (Release, ccache, precompiled header). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# Let clones in other directories share the compiler cache.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
# ccache caches precompiled-header builds only with this sloppiness.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
fi
# Two cores and ~1 GB per torch TU: -j2 fits the 24 GB machines comfortably.
# TARGETS="a b": build only these (scripts/test.sh skips the benchmark programs).
TARGET_ARGS=()
[ -n "${TARGETS:-}" ] && TARGET_ARGS=(--target ${TARGETS})
cmake --build "$BUILD_DIR" -j"${JOBS:-$(nproc)}" "${TARGET_ARGS[@]}"
