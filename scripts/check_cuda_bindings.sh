#!/usr/bin/env bash
# Syntax-checks the torch bindings of the CUDA kernels (src/kernels/cuda/**/*_cuda.cpp),
# the GPU-only tests and CUDA benchmarks (tests/, bench/), and the CPU ops' CUDA hooks
# with DYNARCH_CUDA=1 against the local LibTorch 1.13
# headers (Debian ships ATen/cuda and c10/cuda; only the generated
# cuda_cmake_macros.h is missing, a stub stands in) and /usr/local/cuda/include.
# The real build of these files needs a CUDA LibTorch 2.x (the GPU machine);
# this catches type errors here (ctest cuda_bindings). Exit 77 (skip) without CUDA headers.
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA_INC=${CUDA_INC:-/usr/local/cuda/include}
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || { echo "check_cuda_bindings: no $CUDA_INC, skipped"; exit 77; }
stub=$(mktemp -d); trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/c10/cuda/impl" && echo '#pragma once' > "$stub/c10/cuda/impl/cuda_cmake_macros.h"
# One translation unit for all of them: the torch headers are parsed once (~1 min, not ~1 min per file).
unit="$stub/all_bindings.cpp"
guarded='^#(if|ifdef) DYNARCH_CUDA($|[^_A-Z])'  # code built only with -DDYNARCH_CUDA=ON
{ find src/kernels/cuda -name '*_cuda.cpp' | sort; grep -rlE "$guarded" src --include=*.cpp | sort -u; } |
  sort -u | while read -r f; do echo "#include \"$PWD/$f\""; done > "$unit"
sed 's/^/  /' "$unit"
check() { g++ -std=c++20 -march=x86-64-v3 -fsyntax-only -DDYNARCH_CUDA=1 -Isrc -Itests -I"$stub" \
  -I/usr/include/torch/csrc/api/include -I"$CUDA_INC" "$1"; }
check "$unit"
# The GPU-only tests and the CUDA benchmarks, one unit each (their helpers share names):
# a launcher's signature changed without them would otherwise break only the GPU build.
pids=()
for f in $(grep -lE "$guarded" tests/*.cpp bench/*.cpp | sort); do
  echo "  $f"
  check "$f" & pids+=($!)
  [ ${#pids[@]} -ge 2 ] && { wait "${pids[0]}" || exit 1; pids=("${pids[@]:1}"); }
done
for p in "${pids[@]}"; do wait "$p" || exit 1; done
echo "check_cuda_bindings: ok"
