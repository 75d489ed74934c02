#!/usr/bin/env bash
# README command (2): install, build and run all tests (unit + CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build && ctest --output-on-failure
