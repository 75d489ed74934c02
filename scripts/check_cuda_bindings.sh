#!/usr/bin/env bash
# Syntax-checks the torch bindings of the CUDA kernels (src/kernels/cuda/**/*_cuda.cpp)
# and the CPU ops' CUDA hooks with DYNARCH_CUDA=1 against the local LibTorch 1.13
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
{ find src/kernels/cuda -name '*_cuda.cpp' | sort; grep -rl '^#if DYNARCH_CUDA' src --include=*.cpp | sort; } |
  while read -r f; do echo "#include \"$PWD/$f\""; done > "$unit"
sed 's/^/  /' "$unit"
g++ -std=c++20 -march=x86-64-v3 -fsyntax-only -DDYNARCH_CUDA=1 -Isrc -I"$stub" -I/usr/include/torch/csrc/api/include -I"$CUDA_INC" \
  "$unit" && echo "check_cuda_bindings: ok"
