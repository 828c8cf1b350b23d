#!/usr/bin/env bash
# The knowledge-inheritance and growth experiment on the bundled corpus (CPU; about 15 minutes
# per seed on 2 cores). One teacher is trained once (an existing model, as in the KI paper);
# then, for each seed, the from-scratch student (at four budgets), the KI student and the
# three growth runs, all with that seed (the same student initialisation and data order where
# shapes agree).
# Results go to runs/exp-s<seed>/<variant>; the comparison is printed (docs/methods.md) and
# the curves of the first seed are written to runs/exp-report.html and runs/exp-curves.svg.
#   SEEDS="1 2 3" SCION=build/bin/scion bash bench/experiments/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
S="${SCION:-build/bin/scion}"  # the scion executable (SCION=... to use another build)
SEEDS="${SEEDS:-1 2 3}"
E=bench/experiments
[ -f runs/exp-teacher/model.safetensors ] || $S run $E/ki_teacher.toml --plain > /dev/null
dirs=()
for seed in $SEEDS; do
  d=runs/exp-s$seed
  set_seed="--set run.seed=$seed"
  # The from-scratch student at 1x (600 updates: the budget every other run matches) and at
  # 0.75x, 1.5x and 2x the compute, each with its learning rate annealed at its own end: the
  # loss a from-scratch run reaches for a given budget, to price the other runs' final losses.
  for steps in 450 300 750 1050; do
    out=$d/scratch; [ $steps = 450 ] || out=$d/scratch-$((150 + steps))
    $S run $E/ki_student.toml --plain $set_seed --set 'stages.0.losses=["lm"]' --set stages.1.steps=$steps \
      --out $out > /dev/null
  done
  $S run $E/ki_student.toml --plain $set_seed --out $d/ki > /dev/null
  # KI guided twice as long (300 updates; 548 in all at equal compute)
  $S run $E/ki_student.toml --plain $set_seed --set stages.0.steps=300 --set nodes.inherit.steps=300 \
    --set stages.1.steps=248 --out $d/ki300 > /dev/null
  $S run $E/grow_gpt.toml --plain $set_seed --out $d/grow > /dev/null
  $S run $E/grow_gpt_two_stage.toml --plain $set_seed --out $d/grow2 > /dev/null
  $S run $E/grow_msg.toml --plain $set_seed --out $d/msg > /dev/null
  dirs+=("$d")
done
/usr/bin/python3 $E/compare.py "${dirs[@]}"
first=${dirs[0]}
runs=("$first/scratch" "$first/ki" "$first/ki300" "$first/grow" "$first/grow2" "$first/msg" runs/exp-teacher)
$S report "${runs[@]}" --out runs/exp-report.html
$S report "${runs[@]}" --metrics ppl/loss --out runs/exp-curves.svg
