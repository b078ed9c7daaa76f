#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and sanitizers in build-fuzz/ and runs each for
# SECONDS (default 20) from the seed corpus in fuzz/corpus/. A crash fails the script.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cmake -S . -B build-fuzz -DLAZARUS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="$SAN -fsanitize=fuzzer-no-link" -DCMAKE_C_FLAGS="$SAN" \
  -DCMAKE_EXE_LINKER_FLAGS="$SAN" >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target image_fuzz proc_fuzz range_set_fuzz page_server_fuzz
for t in image_fuzz proc_fuzz range_set_fuzz page_server_fuzz; do
  corpus=$(mktemp -d)
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$corpus/"
  echo "fuzz: $t for ${SECS}s"
  # Crash inputs go to build-fuzz/artifacts/, not into the work tree.
  mkdir -p build-fuzz/artifacts
  build-fuzz/fuzz/$t -max_total_time="$SECS" -print_final_stats=0 \
    -artifact_prefix=build-fuzz/artifacts/$t- "$corpus" 2>&1 | tail -2
  rm -rf "$corpus"
done
echo "fuzz: no crash"
