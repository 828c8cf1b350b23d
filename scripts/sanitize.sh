#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (and
# LeakSanitizer): builds with scripts/sanitize-build.sh (build-asan), then runs ctest there.
# Any sanitizer report fails the test that triggered it: UBSan does not recover, ASan and
# LSan exit non-zero. Extra arguments go to ctest. docs/reliability.md.
#   scripts/sanitize.sh              the whole suite
#   scripts/sanitize.sh -R regex     only the ctest tests matching regex
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SCION_SAN_BUILD_DIR:-build-asan}"
bash scripts/sanitize-build.sh
# OpenBLAS and TBB keep process-lifetime allocations on purpose; tests/sanitize/lsan.supp
# names those libraries and nothing of Scion's.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${SCION_JOBS:-$(nproc)}" "$@"
