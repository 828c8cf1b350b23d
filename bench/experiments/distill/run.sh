#!/usr/bin/env bash
# Distillation from a stored teacher against online knowledge inheritance (docs/methods.md,
# "Distillation from a stored teacher"), on the inheritance experiment's byte-level GPT
# (bench/experiments/ki_student.toml: 150 updates with the teacher, α 1 → 0, then 424 alone;
# the teacher is ki_teacher.toml's). Every student makes the same 574 updates on the same
# batches (equal student compute):
#   scratch        loss "lm" alone (no teacher)
#   online         ki_student.toml: the teacher runs beside the student
#   topk1/10/100   from a top-K cache (bf16, the mass outside the K kept: topk_rest = bucket)
#   topk257        K = V: the whole distribution (f32), which must match online
#   sample8        from K = 8 draws (bf16: 64 bytes per token, as top-10's 62)
# Each cache is written once, before its student (the teacher's FLOPs are in its manifest).
# Results: runs/distill-s<seed>/<variant>; the table (table.py) is printed at the end.
#   SEEDS="1" SCION=build/bin/scion bash bench/experiments/distill/run.sh
# EXTRA adds --set overrides to every command (a quick look: fewer updates, smaller models).
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
SEEDS="${SEEDS:-1}"
EXTRA="${EXTRA:-}"
E=bench/experiments
[ -f runs/exp-teacher/model.safetensors ] || $S run $E/ki_teacher.toml --plain > /dev/null
for seed in $SEEDS; do
  d=runs/distill-s$seed
  common="--plain --set run.seed=$seed $EXTRA"
  # shellcheck disable=SC2086
  $S run $E/ki_student.toml $common --set 'stages.0.losses=["lm"]' --out $d/scratch > /dev/null
  # shellcheck disable=SC2086
  $S run $E/ki_student.toml $common --out $d/online > /dev/null
  for v in "topk1 --k 1" "topk10 --k 10" "topk100 --k 100" "topk257 --k 257 --dtype f32" "sample8 --format sample --k 8"; do
    set -- $v
    name=$1; shift
    cache="--set nodes.inherit.cache=\"$d/cache-$name\""
    # shellcheck disable=SC2086
    $S teacher-cache $E/distill/ki_student_cached.toml $common $cache --teacher teacher "$@" --out $d/cache-$name > /dev/null  # updates 0-149
    # shellcheck disable=SC2086
    $S run $E/distill/ki_student_cached.toml $common $cache --out $d/$name > /dev/null
  done
  /usr/bin/python3 $E/distill/table.py $d
done
