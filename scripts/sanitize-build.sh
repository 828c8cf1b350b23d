#!/usr/bin/env bash
# Configures and builds the AddressSanitizer + UndefinedBehaviorSanitizer tree that
# scripts/sanitize.sh (the test suite) and scripts/fuzz.sh (the libFuzzer targets) both use:
# one build, in build-asan unless SCION_SAN_BUILD_DIR says otherwise. With clang++-16 (the
# default; scripts/install-deps.sh installs it) the fuzz targets are part of it and every
# library carries libFuzzer's coverage hooks, which the test binaries ignore; with another
# compiler (SCION_SAN_CXX=g++) only the tests are built.
#   scripts/sanitize-build.sh [ninja targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SCION_SAN_BUILD_DIR:-build-asan}"
CXX_BIN="${SCION_SAN_CXX:-clang++-16}"
fuzz=OFF
cc=()
case "$(basename "$CXX_BIN")" in
  clang++*) fuzz=ON; cc=(-DCMAKE_C_COMPILER="${CXX_BIN/clang++/clang}") ;;
esac
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCION_SANITIZE=ON -DSCION_FUZZ="$fuzz" \
      -DCMAKE_CXX_COMPILER="$CXX_BIN" "${cc[@]}" -DSCION_CUDA=OFF -DSCION_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
targets=()
if [ $# -gt 0 ]; then targets=(--target "$@"); fi
cmake --build "$BUILD_DIR" -j "${SCION_JOBS:-$(nproc)}" "${targets[@]}"
