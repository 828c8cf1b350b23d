#!/usr/bin/env python3
"""The distillation experiment's table (bench/experiments/distill/run.sh): per variant the final
validation loss, the student's FLOPs, the teacher's FLOPs (online: in the run's count; cached:
the cache's, charged once to one student and amortised over all the cached students), the
student's tokens/s and the cache's bytes per token and size on disk."""
import json
import os
import sys


def lines(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def main(out):
    variants = ["scratch", "online", "topk1", "topk10", "topk100", "topk257", "sample8"]
    rows = {}
    for v in variants:
        run = os.path.join(out, v)
        if not os.path.isdir(run):
            continue
        m = lines(run)
        evals = [l["ppl/loss"] for l in m if "ppl/loss" in l]
        train = [l for l in m if "tokens_per_s" in l]
        row = {"loss": evals[-1] if evals else float("nan"), "flops": train[-1]["flops"],
               "tps": sum(l["tokens_per_s"] for l in train) / len(train)}
        cache = os.path.join(out, "cache-" + v)
        if os.path.isdir(cache):
            with open(os.path.join(cache, "manifest.json")) as f:
                man = json.load(f)
            row["teacher"] = man["teacher_forward_flops"]
            row["bytes"] = man["bytes_per_token"]
            row["disk"] = sum(os.path.getsize(os.path.join(cache, x)) for x in os.listdir(cache))
        rows[v] = row
    cached = [v for v in rows if "teacher" in rows[v]]
    scratch = rows.get("scratch", {}).get("flops")
    print("| variant | final valid loss | student FLOPs | + teacher, one student | + teacher, amortised over %d | "
          "student tokens/s | bytes/token | cache on disk |" % max(len(cached), 1))
    print("|---|---|---|---|---|---|---|---|")
    for v, r in rows.items():
        if v == "online":  # the run's flops already hold the teacher's forward passes
            own = scratch if scratch else r["flops"]
            one = amort = "%.3g" % r["flops"]
        else:
            own = r["flops"]
            t = r.get("teacher", 0.0)
            one = "%.3g" % (own + t)
            amort = "%.3g" % (own + t / max(len(cached), 1))
        print("| %s | %.4f | %.3g | %s | %s | %.0f | %s | %s |" % (
            v, r["loss"], own, one, amort, r["tps"], r.get("bytes", "-"),
            "%.1f MB" % (r["disk"] / 1e6) if "disk" in r else "-"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/distill-s1")
