#!/usr/bin/env bash
# Distillation from a stored teacher against online knowledge inheritance (docs/methods.md,
# "Distillation from a stored teacher"). gpt_pretrain's model teaches graphs/ki_gpt.toml's
# GPT student; every student makes the same updates on the same batches (equal student
# compute), α falling from 1 to 0 over the first KI_STEPS:
#   scratch      α = 0 (no teacher)
#   online       graphs/ki_gpt.toml: the teacher runs beside the student
#   topk1/10/100 graphs/ki_cached.toml from a top-K cache (bf16; the mass outside the K kept)
#   sample8      from K = 8 draws (bf16: 64 bytes per token, as top-10's 62)
# The caches are written once, before the students (their teacher FLOPs are in their
# manifests). Results: runs/distill/<variant>; the table (table.py) is printed at the end.
#   SCION=build/bin/scion STEPS=400 KI_STEPS=200 bash bench/experiments/distill/run.sh
# EXTRA adds --set overrides to every command (a quick look: smaller models, fewer steps).
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
STEPS="${STEPS:-400}"
KI_STEPS="${KI_STEPS:-200}"
OUT="${OUT:-runs/distill}"
TEACHER="${TEACHER:-runs/gpt-pretrain/student.safetensors}"
EXTRA="${EXTRA:-}"
[ -f "$TEACHER" ] || $S run graphs/gpt_pretrain.toml --plain > /dev/null
common="--set nodes.teacher.load=$TEACHER --set stages.0.steps=$STEPS --set nodes.inherit.steps=$KI_STEPS $EXTRA"
mkdir -p "$OUT"
$S run graphs/ki_gpt.toml --plain $common --set nodes.inherit.alpha=0 --out "$OUT/scratch" > /dev/null
$S run graphs/ki_gpt.toml --plain $common --out "$OUT/online" > /dev/null
for v in "topk1 --k 1" "topk10 --k 10" "topk100 --k 100" "sample8 --format sample --k 8"; do
  set -- $v
  name=$1; shift
  # shellcheck disable=SC2086
  $S teacher-cache graphs/ki_cached.toml $common --teacher teacher --steps "$KI_STEPS" --plain "$@" \
    --out "$OUT/cache-$name" > /dev/null
  $S run graphs/ki_cached.toml $common --set nodes.inherit.cache="\"$OUT/cache-$name\"" --plain --out "$OUT/$name" > /dev/null
done
/usr/bin/python3 bench/experiments/distill/table.py "$OUT"
