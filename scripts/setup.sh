#!/usr/bin/env bash
# Idempotent installer for a bare Debian 12 machine: packages + the OpenBLAS
# OpenMP alternative (without it Debian's libtorch uses the reference BLAS,
# ~50x slower; see shared/spec/platform.md §3).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(build-essential cmake ccache mold ninja-build pkg-config
      libtorch-dev libopenblas0-openmp libgloo-dev
      nlohmann-json3-dev libcli11-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
      python3 python3-torch python3-omegaconf xz-utils gzip
      clang libclang-rt-14-dev)  # clang + its fuzzer/sanitizer runtimes: scripts/fuzz.sh
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Select the OpenMP OpenBLAS build explicitly (the pthread one wins by priority if present).
for alt in libblas.so.3 liblapack.so.3; do
  target=/usr/lib/x86_64-linux-gnu/openblas-openmp/$alt
  if [ -e "$target" ]; then
    $SUDO update-alternatives --set "$alt-x86_64-linux-gnu" "$target" >/dev/null
  fi
done
echo "[setup] packages ok; BLAS -> $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)" >&2
