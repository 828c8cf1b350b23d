#!/usr/bin/env bash
# ELLE against its baselines on the bundled five-domain corpus (CPU, threads 1, about 6 minutes
# per seed on a loaded 2-core machine): graphs/elle_gpt.toml, then each baseline graph with its
# steps per domain set so that its training FLOPs equal ELLE's, domain by domain (warmups and
# replayed rows included: bench/experiments/elle/steps.py). Prints the table of docs/methods.md
# ("ELLE") and writes the curves of the first seed to runs/elle-report.html / runs/elle-ap.svg.
#   SEEDS="1" SCION=build/bin/scion bash bench/experiments/elle/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
SEEDS="${SEEDS:-1}"
E=bench/experiments/elle
dirs=()
for seed in $SEEDS; do
  d=runs/elle-s$seed
  $S run graphs/elle_gpt.toml --plain --threads 1 --set run.seed=$seed --out $d/elle > /dev/null
  for b in final final_noreplay small small_noreplay; do
    one=""
    for i in 0 1 2 3 4; do one="$one --set stages.$i.steps=1 --set stages.$i.optimizer.warmup=1"; done
    rm -rf $d/probe-$b
    $S run graphs/elle_gpt_$b.toml --plain --threads 1 --set run.seed=$seed $one --out $d/probe-$b > /dev/null
    sets=$(/usr/bin/python3 $E/steps.py $d/elle $d/probe-$b)
    echo "seed $seed, $b: $sets"
    # shellcheck disable=SC2086
    $S run graphs/elle_gpt_$b.toml --plain --threads 1 --set run.seed=$seed $sets --out $d/$b > /dev/null
  done
  dirs+=("$d")
done
/usr/bin/python3 $E/compare.py "${dirs[@]}"
first=${dirs[0]}
runs=("$first/elle" "$first/final" "$first/final_noreplay" "$first/small" "$first/small_noreplay")
$S report "${runs[@]}" --metric lifelong/ap --out runs/elle-report.html
$S report "${runs[@]}" --metrics lifelong/ap,lifelong/ap_plus --out runs/elle-ap.svg
