#!/usr/bin/env bash
# Sets up, builds and runs every test (unit and end-to-end). Needs root: the end-to-end tests
# dump and restore real processes.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
# The image and /proc parsers under libFuzzer and sanitizers, briefly (longer: scripts/fuzz.sh 600).
./scripts/fuzz.sh 15
cd build
# --no-tests=error: a run that executes no test fails.
ctest --output-on-failure --no-tests=error -LE bench "$@"
