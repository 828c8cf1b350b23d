#!/usr/bin/env bash
# Distillation from a stored teacher against online knowledge inheritance and from-scratch
# training (docs/methods.md, "Distillation from a stored teacher"), at equal student compute.
# FAMILY=gpt (default): the inheritance experiment's byte-level GPT (bench/experiments/
# ki_student.toml: 150 updates with ki_teacher.toml's 2-layer teacher, α 1 → 0, then 424
# alone). FAMILY=llama: the same schedule on the growth experiment's small Llama
# (llama_student.toml, teacher llama_teacher.toml). Every student makes the same 574 updates on
# the same batches:
#   scratch        loss "lm" alone (no teacher); also at 0.75x, 1.5x and 2x the updates
#                  (scratch-431, scratch-861, scratch-1148), for the compute-equivalent saving
#   online         the teacher runs beside the student
#   topk1/10/100   from a top-K cache (bf16, the mass outside the K kept: topk_rest = bucket)
#   topk257        K = V: the whole distribution (f32), which must match online
#   sample8        from K = 8 draws (bf16: 64 bytes per token, as top-10's 62)
# Each cache is written once, before its student (the teacher's FLOPs are in its manifest).
# Results: runs/distill[-llama]-s<seed>/<variant>; table.py prints the table over every seed.
# Seeds run one after another, each run on $THREADS threads (default 1); to use two cores,
# start two scripts with different SEEDS (the teacher is trained by the first, then shared):
#   SEEDS="1 2 3" bash bench/experiments/distill/run.sh
#   FAMILY=llama SEEDS="1 2 3" bash bench/experiments/distill/run.sh
# EXTRA adds --set overrides to every command (a quick look: fewer updates, smaller models).
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
SEEDS="${SEEDS:-1}"
EXTRA="${EXTRA:-}"
THREADS="${THREADS:-1}"
E=bench/experiments
D=$E/distill
case "${FAMILY:-gpt}" in
  gpt) teacher=$E/ki_teacher.toml teacher_out=runs/exp-teacher student=$E/ki_student.toml
       cached=$D/ki_student_cached.toml prefix=runs/distill-s ;;
  llama) teacher=$D/llama_teacher.toml teacher_out=runs/exp-llama-teacher student=$D/llama_student.toml
         cached=$D/llama_student_cached.toml prefix=runs/distill-llama-s ;;
  *) echo "FAMILY must be gpt or llama" >&2; exit 2 ;;
esac
# A run is done when it wrote its final model (a killed script starts its unfinished run again).
done_run() { [ -f "$1/model.safetensors" ] || [ -f "$1/student.safetensors" ] || { rm -rf "$1"; false; }; }
done_run $teacher_out || $S run $teacher --plain --set run.threads=$THREADS --out $teacher_out > /dev/null
for seed in $SEEDS; do
  d=$prefix$seed
  common="--plain --set run.threads=$THREADS --set run.seed=$seed $EXTRA"
  for steps in 424 281 711 998; do
    out=$d/scratch; [ $steps = 424 ] || out=$d/scratch-$((150 + steps))
    # shellcheck disable=SC2086
    done_run $out || $S run $student $common --set 'stages.0.losses=["lm"]' --set stages.1.steps=$steps --out $out > /dev/null
  done
  # shellcheck disable=SC2086
  done_run $d/online || $S run $student $common --out $d/online > /dev/null
  for v in "topk1 --k 1" "topk10 --k 10" "topk100 --k 100" "topk257 --k 257 --dtype f32" "sample8 --format sample --k 8"; do
    set -- $v
    name=$1; shift
    cache="--set nodes.inherit.cache=\"$d/cache-$name\""
    done_run $d/$name && continue
    rm -rf "$d/cache-$name"
    # shellcheck disable=SC2086
    $S teacher-cache $cached $common $cache --teacher teacher "$@" --out $d/cache-$name > /dev/null  # updates 0-149
    # shellcheck disable=SC2086
    $S run $cached $common $cache --out $d/$name > /dev/null
  done
done
/usr/bin/python3 $D/table.py $(for seed in $SEEDS; do echo $prefix$seed; done)
