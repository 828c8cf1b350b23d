#!/usr/bin/env bash
# Pruning to a chosen architecture at equal compute (CPU, one thread per run): a trained dense
# byte-level GPT (4 layers, width 128, 4 heads; $DENSE, by default the growth experiment's
# from-scratch student after 1200 updates, runs/exp-s1/scratch-1200, which
# bench/experiments/growth_llm.sh trains) cut to width 96, 3 heads of 32 and 320 FFN units per
# layer (51% of its parameters) by
#   sheared-dbl      Sheared-LLaMA's targeted pruning (200 updates) and continued training, with
#                    dynamic batch loading against the dense model's per-domain losses;
#   sheared-uniform  the same on fixed equal domain weights;
#   minitron         Minitron's one-shot importance pruning and logit distillation;
# against the same shape trained from scratch at 0.75x, 1x, 1.5x and 2x the budget of 600
# updates (and 4x and 8x for the first seed). Every variant gets the FLOPs of scratch's 600 updates (the pruning stage and the
# teacher's forward passes included; equal_steps.py). Savings are `scion report --baseline`
# (../compare.py); then the forward speed of each model and each variant's per-domain
# perplexity and final domain weights (table.py). Results: runs/shape-exp/s<seed>/.
# FAMILY=llama does the same on a small Llama: the growth experiment's 1200-update Llama (4
# layers, width 128, 4 query heads on 2 key/value heads, 344 SwiGLU units;
# runs/exp-llama-s1/scratch-1200, from FAMILY=llama growth_llm.sh) cut to width 64 and one
# key/value group of 2 heads (44% of its parameters; *_llama.toml); results in
# runs/shape-llama-exp/.
#   SEEDS="1 2 3" SCION=build/bin/scion bash bench/experiments/shape/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
B="${BENCH:-build/bin/bench_prune_forward}"
SEEDS="${SEEDS:-1 2 3}"
FAMILY="${FAMILY:-gpt}"
E=bench/experiments/shape
if [ "$FAMILY" = llama ]; then
  R="${OUT:-runs/shape-llama-exp}" x=_llama
  dense="${DENSE:-runs/exp-llama-s1/scratch-1200/model.safetensors}"
else
  R="${OUT:-runs/shape-exp}" x=
  dense="${DENSE:-runs/exp-s1/scratch-1200/student.safetensors}"
fi
[ -f "$dense" ] || FAMILY=$FAMILY SEEDS=1 SCION=$S bash bench/experiments/growth_llm.sh > /dev/null
load=(--set nodes.model.load=$dense)
mkdir -p $R
done_run() { [ -f "$1/metrics.jsonl" ] && ls "$1"/model.safetensors > /dev/null 2>&1; }
# The references of dynamic batch loading: the dense model's validation loss on each domain.
[ -f $R/dense-eval.json ] || $S eval $E/scratch$x.toml --checkpoint $dense --set nodes.model.load=$dense | tail -1 > $R/dense-eval.json
refs=$(/usr/bin/python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["ppl"]
print("--set nodes.mix.reference={%s}" % ",".join("%s=%.6f" % (k.split("/")[0], v) for k, v in p.items() if k.endswith("/loss")))' $R/dense-eval.json)
dirs=()
for seed in $SEEDS; do
  d=$R/s$seed
  set_seed="--set run.seed=$seed"
  # The first seed's baseline also runs 4x and 8x the budget: the pruned models beat 2x.
  budgets="600 450 900 1200"
  [ "$seed" != "${SEEDS%% *}" ] || budgets="$budgets 2400 4800"
  for steps in $budgets; do
    out=$d/scratch; [ $steps = 600 ] || out=$d/scratch-$steps
    done_run $out || $S run $E/scratch$x.toml --plain $set_seed --set stages.0.steps=$steps --out $out > /dev/null
  done
  probe=(--set stages.0.steps=1 --set stages.0.log_every=1 --set stages.0.eval.every=0)
  rm -rf $d/probe-sheared $d/probe-minitron
  $S run $E/sheared$x.toml --plain $set_seed "${load[@]}" "${probe[@]}" --set stages.1.steps=1 --set stages.1.log_every=1 \
    --set stages.1.eval.every=0 --out $d/probe-sheared > /dev/null
  cont=$(/usr/bin/python3 bench/experiments/equal_steps.py $d/scratch $d/probe-sheared 200)
  echo "seed $seed: sheared 200 pruning updates, $cont after the cut"
  done_run $d/sheared-dbl || $S run $E/sheared$x.toml --plain $set_seed "${load[@]}" --set stages.1.steps=$cont \
    --set nodes.mix.evaluator=ppl $refs --out $d/sheared-dbl > /dev/null
  done_run $d/sheared-uniform || $S run $E/sheared$x.toml --plain $set_seed "${load[@]}" --set stages.1.steps=$cont \
    --out $d/sheared-uniform > /dev/null
  $S run $E/minitron$x.toml --plain $set_seed "${load[@]}" --set nodes.teacher.load=$dense "${probe[@]}" \
    --out $d/probe-minitron > /dev/null
  steps=$(/usr/bin/python3 -c '
import json, sys
f = lambda r: [json.loads(l)["flops"] for l in open(r + "/metrics.jsonl") if "\"loss\"" in l]
print(round(f(sys.argv[1])[-1] / f(sys.argv[2])[0]))' $d/scratch $d/probe-minitron)
  echo "seed $seed: minitron $steps distillation updates"
  done_run $d/minitron || $S run $E/minitron$x.toml --plain $set_seed "${load[@]}" --set nodes.teacher.load=$dense \
    --set stages.0.steps=$steps --out $d/minitron > /dev/null
  dirs+=("$d")
done
VARIANTS="sheared-dbl sheared-uniform minitron" COMPARE_REPORT=$R/savings.html /usr/bin/python3 bench/experiments/compare.py "${dirs[@]}"
d=${dirs[0]}
$B --threads 1 --batch 8 --seq 64 --reps 30 --family $([ "$FAMILY" = llama ] && echo llama || echo gpt2) $dense $d/sheared-dbl/model.safetensors $d/minitron/model.safetensors \
  $d/scratch/model.safetensors > $R/speed.jsonl
/usr/bin/python3 $E/table.py $R/speed.jsonl "${dirs[@]}"
