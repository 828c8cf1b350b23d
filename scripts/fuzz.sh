#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang-16, ASan + UBSan, coverage on every library and
# plugin) into build-asan (scripts/sanitize-build.sh) and runs each for SECONDS (default 60), one after another, from seed
# corpora made of the repository's own files (fuzz/make_seeds.py). A crash, a leak, a
# sanitizer report, an input slower than 10 s or an allocation over 2 GiB stops the target,
# leaves the input in build-asan/findings/<target>/ and makes the script fail. Prints each
# target's execution count. docs/reliability.md.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
BUILD_DIR="${SCION_SAN_BUILD_DIR:-build-asan}"
ALL=(fuzz_graph fuzz_safetensors fuzz_shard fuzz_gpt2_tokenizer fuzz_wordpiece fuzz_checkpoint_state fuzz_metrics fuzz_hf_config fuzz_datastore_manifest)
# The sanitizer tree (scripts/sanitize-build.sh), the fuzz targets only (and the plugins the
# graph target loads).
SCION_SAN_CXX="${SCION_SAN_CXX:-clang++-16}" bash scripts/sanitize-build.sh "${ALL[@]}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=("${ALL[@]}"); fi
python3 fuzz/make_seeds.py . "$BUILD_DIR/seeds"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0}"
failed=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/corpus/$t" findings="$BUILD_DIR/findings/$t"
  mkdir -p "$corpus" "$findings"
  log="$BUILD_DIR/fuzz-$t.log"
  # -max_len: large enough for the GPT-2 seeds; -rss_limit_mb: an input that makes a loader
  # allocate gigabytes is a finding (a size read from the file and trusted).
  if "$BUILD_DIR/fuzz/$t" "$corpus" "$BUILD_DIR/seeds/$t" -max_total_time="$SECONDS_EACH" -timeout=10 \
       -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$findings/" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  printf '%-24s %-7s %s executions (%s s; log %s)\n' "$t" "$status" "${runs:-?}" "$SECONDS_EACH" "$log"
  if [ "$status" = FAILED ]; then grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$log" | head -5 || true; fi
done
exit $failed
