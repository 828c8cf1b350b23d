#!/usr/bin/env bash
# What CI runs of the reliability checks (docs/reliability.md), sized for its budget (2 cores,
# 90 minutes for everything, after scripts/test.sh): the sanitizer build (clang-16, ASan +
# UBSan) of the libraries, the plugins, the fuzz targets and a named subset of the test
# binaries; each fuzz target for a few seconds from its seeds; that subset under the
# sanitizers. The whole suite under the sanitizers is scripts/sanitize.sh (too long for CI).
#   SCION_FUZZ_SECONDS (default 5) per fuzz target
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SCION_SAN_BUILD_DIR:-build-asan}"
# The tests run under the sanitizers in CI: the tensor runtime and its file formats, the
# tokenizers, and the reliability refusals (which drive the sanitized `scion` binary).
SUBSET=(test_tensor test_text test_reliability)
FUZZ=(fuzz_graph fuzz_safetensors fuzz_shard fuzz_gpt2_tokenizer fuzz_wordpiece fuzz_checkpoint_state fuzz_metrics fuzz_hf_config fuzz_datastore_manifest)
bash scripts/sanitize-build.sh "${FUZZ[@]}" "${SUBSET[@]}" scion scion_lm scion_optim scion_growth scion_inherit
bash scripts/fuzz.sh "${SCION_FUZZ_SECONDS:-5}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0}"
# Tests that need a plugin the sanitizer tree does not build (memory.datastore: FAISS); they
# run in the normal suite (scripts/test.sh).
NEEDS_UNBUILT_PLUGINS="OwnedFiles.ADatastorePathNamingAUsersFolderIsRefusedAtValidation"
for t in "${SUBSET[@]}"; do
  echo "== $t (ASan + UBSan)"
  "$BUILD_DIR/bin/$t" --gtest_brief=1 --gtest_filter="-$NEEDS_UNBUILT_PLUGINS"
done
