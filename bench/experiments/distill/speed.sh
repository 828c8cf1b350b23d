#!/usr/bin/env bash
# Student tokens/s while the teacher works (the first stage: 150 updates), alone on the
# machine, side by side: no teacher (scratch), the teacher online, and from seed 1's caches
# (run.sh first). ROUNDS rounds, the variants interleaved; the median of each variant's
# per-round mean. FAMILY=gpt|llama as in run.sh; THREADS (default: all).
#   bash bench/experiments/distill/speed.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
S="${SCION:-build/bin/scion}"
ROUNDS="${ROUNDS:-3}"
E=bench/experiments
D=$E/distill
case "${FAMILY:-gpt}" in
  gpt) student=$E/ki_student.toml cached=$D/ki_student_cached.toml runs=runs/distill-s1 ;;
  llama) student=$D/llama_student.toml cached=$D/llama_student_cached.toml runs=runs/distill-llama-s1 ;;
  *) echo "FAMILY must be gpt or llama" >&2; exit 2 ;;
esac
out=runs/distill-speed-${FAMILY:-gpt}
rm -rf "$out"
common=(--plain --set run.seed=1 --set stages.1.steps=1 --set stages.0.eval.every=1000)
[ -n "${THREADS:-}" ] && common+=(--set run.threads=$THREADS)
for r in $(seq "$ROUNDS"); do
  $S run $student "${common[@]}" --set 'stages.0.losses=["lm"]' --out $out/scratch-r$r > /dev/null
  $S run $student "${common[@]}" --out $out/online-r$r > /dev/null
  for v in topk10 topk100 topk257 sample8; do
    $S run $cached "${common[@]}" --set "nodes.inherit.cache=\"$runs/cache-$v\"" --out $out/$v-r$r > /dev/null
  done
done
/usr/bin/python3 - "$out" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def tps(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        m = [json.loads(l) for l in f if l.strip()]
    first = [l["tokens_per_s"] for l in m if "tokens_per_s" in l and l.get("stage") == "inherit"]
    return sum(first) / len(first)
rows = {v: statistics.median(tps(os.path.join(out, f"{v}-r{r}")) for r in range(1, rounds + 1))
        for v in ["scratch", "online", "topk10", "topk100", "topk257", "sample8"]}
print("| student | tokens/s, first stage (median of %d) | against online |" % rounds)
print("|---|---|---|")
for v, t in rows.items():
    print("| %s | %.0f | %.2fx |" % (v, t, t / rows["online"]))
PY
