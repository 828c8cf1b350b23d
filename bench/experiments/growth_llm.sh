#!/usr/bin/env bash
# Growth as done at LLM scale against from-scratch training at equal compute (CPU, one thread
# per run): G_stack (a 1-layer model stacked 4 times) grown after 50, 150 and 400 small updates,
# HyperCloning (a width-64 model cloned to width 128) after 300, and the seed-paper methods on
# the same target (bert2BERT AKI, MSG: bench/experiments/grow_gpt.toml, grow_msg.toml), all
# onto the from-scratch student of bench/experiments/run.sh (4 layers of width 128). Every run
# gets the compute of scratch's 600 updates, the small model's training included
# (equal_steps.py); the savings are `scion report --baseline` over the scratch runs at four
# budgets (compare.py). Runs shared with run.sh (scratch*, grow, msg) are reused when present.
# Results: runs/exp-s<seed>/; the table of docs/methods.md is printed.
#   SEEDS="1 2 3" SCION=build/bin/scion bash bench/experiments/growth_llm.sh
# FAMILY=llama does the same on a small Llama (bench/experiments/growth_llama/: RMSNorm, SwiGLU,
# rotary, 4 query heads on 2 key/value heads; the seed-paper methods are AKI and MSG grown
# from a 2-layer width-64 Llama); results in runs/exp-llama-s<seed>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
S="${SCION:-build/bin/scion}"
SEEDS="${SEEDS:-1 2 3}"
FAMILY="${FAMILY:-gpt}"
E=bench/experiments
L=$E/growth_llama
if [ "$FAMILY" = gpt ]; then
  # The from-scratch student's graph also names run.sh's teacher (unused by scratch runs).
  [ -f runs/exp-teacher/model.safetensors ] || $S run $E/ki_teacher.toml --plain --threads 1 > /dev/null
  prefix=runs/exp-s scratch=($E/ki_student.toml --set 'stages.0.losses=["lm"]')
  seed_paper=(grow:$E/grow_gpt.toml msg:$E/grow_msg.toml) grown=$E/%s_gpt.toml
elif [ "$FAMILY" = llama ]; then
  prefix=runs/exp-llama-s scratch=($L/scratch.toml)
  seed_paper=(aki:$L/aki.toml msg:$L/msg.toml) grown=$L/%s.toml
else
  echo "FAMILY must be gpt or llama" >&2; exit 2
fi
done_run() { [ -f "$1/metrics.jsonl" ] && [ -f "$1/graph.toml" ] && ls "$1"/*.safetensors > /dev/null 2>&1; }
dirs=()
for seed in $SEEDS; do
  d=$prefix$seed
  set_seed="--set run.seed=$seed"
  for steps in 450 300 750 1050; do
    out=$d/scratch; [ $steps = 450 ] || out=$d/scratch-$((150 + steps))
    done_run $out || $S run "${scratch[@]}" --plain --threads 1 $set_seed --set stages.1.steps=$steps --out $out > /dev/null
  done
  for v in "${seed_paper[@]}"; do
    done_run $d/${v%%:*} || $S run ${v#*:} --plain --threads 1 $set_seed --out $d/${v%%:*} > /dev/null
  done
  for v in gstack-50 gstack-150 gstack-400 hyperclone-300; do
    graph=$(printf "$grown" ${v%-*}) small=${v#*-}
    probe=(--set stages.0.steps=1 --set stages.1.steps=1 --set stages.0.log_every=1 --set stages.1.log_every=1
           --set stages.0.eval.every=0 --set stages.1.eval.every=0)
    rm -rf $d/probe-$v
    $S run $graph --plain --threads 1 $set_seed "${probe[@]}" --out $d/probe-$v > /dev/null
    grown_steps=$(/usr/bin/python3 $E/equal_steps.py $d/scratch $d/probe-$v $small)
    echo "seed $seed, $v: $small small updates, $grown_steps grown"
    done_run $d/$v || $S run $graph --plain --threads 1 $set_seed --set stages.0.steps=$small \
      --set stages.1.steps=$grown_steps --out $d/$v > /dev/null
  done
  dirs+=("$d")
done
VARIANTS="${seed_paper[*]%%:*} gstack-50 gstack-150 gstack-400 hyperclone-300" /usr/bin/python3 $E/compare.py "${dirs[@]}"
