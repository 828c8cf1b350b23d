#!/usr/bin/env bash
# TRIME and kNN-LM on the bundled five-domain corpus (CPU, one thread, about 10 minutes).
# Four byte-level GPTs (graphs/trime_gpt*.toml: 4 layers, width 128) trained for the same
# number of updates on the same kind of batches (equal model compute): vanilla cross-entropy,
# TrimeLM (local memory), TrimeLM_long (consecutive segments) and TrimeLM_ext (BM25 batches).
# Each is then evaluated per domain on the validation files with and without TRIME's long
# memory, each also with kNN-LM over a datastore of its own ffn_input over the first
# $DSTORE_TOKENS training tokens (graphs/knnlm_gpt.toml). The table is printed by
# summarise.py (docs/methods.md, TRIME).
#   SCION=build/bin/scion bash bench/experiments/trime/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
STEPS="${STEPS:-300}"
DSTORE_TOKENS="${DSTORE_TOKENS:-100000}"
OUT="${OUT:-runs/exp-trime}"
mkdir -p "$OUT"
common=(--threads 1 --plain --set stages.0.steps=$STEPS --set stages.0.eval.every=0 --set stages.0.checkpoint.every=0
        --set nodes.trime.ce_warmup=$((STEPS / 20)))
$S run graphs/trime_gpt_vanilla.toml --threads 1 --plain --set stages.0.steps=$STEPS --set stages.0.eval.every=0 \
  --set stages.0.checkpoint.every=0 --out $OUT/vanilla > /dev/null
$S run graphs/trime_gpt.toml "${common[@]}" --out $OUT/trime > /dev/null
$S run graphs/trime_gpt.toml "${common[@]}" --set nodes.trime.memory='"long"' --out $OUT/trime_long > /dev/null
$S run graphs/trime_gpt.toml "${common[@]}" --set nodes.trime.memory='"ext"' --set nodes.corpus.order='"bm25"' \
  --out $OUT/trime_ext > /dev/null
for v in vanilla trime trime_long trime_ext; do
  d=$OUT/$v
  ev=(eval graphs/knnlm_gpt.toml --checkpoint $d/student.safetensors --set run.threads=1
      --set nodes.dstore.path="\"$d/dstore\"" --set nodes.knn.datastore="\"$d/dstore\""
      --set nodes.dstore.max_tokens=$DSTORE_TOKENS --set nodes.dstore.progress=false --set nodes.knn.max_batches=3)
  # Long memory + kNN-LM (builds the datastore), then the LM + kNN-LM alone (reuses it: the
  # builder is pointed elsewhere and writes a one-window store there).
  $S "${ev[@]}" --set nodes.knn.memory='"long"' > $d/eval_long.json
  $S "${ev[@]}" --set nodes.knn.memory='"none"' --set nodes.dstore.path="\"$d/dstore_unused\"" \
    --set nodes.dstore.max_tokens=128 > $d/eval_none.json
done
# An IVF-PQ datastore (compressed keys) for the ext model: build time and search speed.
d=$OUT/trime_ext
$S eval graphs/knnlm_gpt.toml --checkpoint $d/student.safetensors --set run.threads=1 \
  --set nodes.dstore.path="\"$d/dstore_ivfpq\"" --set nodes.knn.datastore="\"$d/dstore_ivfpq\"" \
  --set nodes.dstore.index='"IVF256,PQ16"' --set nodes.dstore.max_tokens=$DSTORE_TOKENS --set nodes.dstore.progress=false \
  --set nodes.knn.max_batches=3 --set nodes.knn.memory='"long"' > $d/eval_ivfpq.json
/usr/bin/python3 bench/experiments/trime/summarise.py $OUT
