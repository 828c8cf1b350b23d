#!/usr/bin/env bash
# The CoFiPruning experiment (CPU, one thread, about 13 minutes): a byte-level GPT (4 layers,
# width 128) is trained once (teacher.toml), then pruned with distillation to 50, 75, 90 and
# 95% sparsity and fine-tuned (prune.toml); for each target a dense GPT of the pruned model's
# parameter count is trained from scratch for the same FLOPs and, again, for the same updates
# (teacher.toml, narrower); then
# the forward tokens/s of every model on the same batch with the same thread count.
# Results go to runs/cofi-exp/; the table (docs/methods.md) is printed.
#   SCION=build/bin/scion bash bench/experiments/cofi/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
B="${BENCH:-build/bin/bench_prune_forward}"
E=bench/experiments/cofi
R=runs/cofi-exp
[ -f $R/dense/model.safetensors ] || $S run $E/teacher.toml --plain --out $R/dense > /dev/null
for t in 50 75 90 95; do
  [ -f $R/t$t/student.safetensors ] || \
    $S run $E/prune.toml --plain --set nodes.cofi.target=0.$t --out $R/t$t > /dev/null
  # The from-scratch baseline: width, heads and updates for this pruned model (compare.py).
  read -r width heads steps < <(/usr/bin/python3 $E/compare.py --baseline $R/dense $R/t$t)
  [ -f $R/scratch$t/model.safetensors ] || \
    $S run $E/teacher.toml --plain --set nodes.model.width=$width --set nodes.model.heads=$heads \
      --set stages.0.steps=$steps --set stages.0.eval.every=$steps --out $R/scratch$t > /dev/null
  # The same model from scratch for as many updates (tokens) as pruning + fine-tuning took.
  [ -f $R/tokens$t/model.safetensors ] || \
    $S run $E/teacher.toml --plain --set nodes.model.width=$width --set nodes.model.heads=$heads \
      --set stages.0.steps=800 --set stages.0.eval.every=800 --out $R/tokens$t > /dev/null
done
$B --threads 1 --batch 8 --seq 64 --reps 30 $R/dense/model.safetensors \
  $R/t50/student.safetensors $R/t75/student.safetensors $R/t90/student.safetensors $R/t95/student.safetensors \
  $R/scratch95/model.safetensors > $R/speed.jsonl
/usr/bin/python3 $E/compare.py $R
