#!/usr/bin/env bash
# Data-parallel throughput on this machine: the main graph's model at 1 rank and at 2 ranks
# (one thread each, the same per-rank batch), then the bucketed all-reduce against one
# MPI_Allreduce. Medians of the logged tokens/s after the first 5 updates.
#   bash bench/dist_compare.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
S=build/bin/scion
STEPS=${1:-30}
MPI="mpirun --allow-run-as-root --oversubscribe"
out=$(mktemp -d)
med() { /usr/bin/python3 -c "import json,sys,statistics; v=[json.loads(l)['tokens_per_s'] for l in open(sys.argv[1]) if 'tokens_per_s' in l][1:]; print(round(statistics.median(v)))" "$1"; }
set_args="--set stages.0.steps=$STEPS --set stages.0.eval.every=0 --set stages.0.checkpoint.every=0 --set stages.0.log_every=1 --threads 1 --plain"
$S run graphs/gpt_pretrain.toml $set_args --out $out/r1 > /dev/null
$MPI -np 2 $S run graphs/gpt_pretrain.toml $set_args --out $out/r2 > /dev/null
echo "tokens/s, 1 rank x 1 thread:  $(med $out/r1/metrics.jsonl)"
echo "tokens/s, 2 ranks x 1 thread: $(med $out/r2/metrics.jsonl)"
$MPI -np 2 build/bin/bench_allreduce
rm -rf "$out"
