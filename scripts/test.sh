#!/usr/bin/env bash
# README command (2): install, build and run all tests (unit + CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Only what ctest runs: the CLI and the test binary, not the bench/ programs.
TARGETS="dynarch dynarch_tests" bash scripts/build.sh
cd build && ctest --output-on-failure
