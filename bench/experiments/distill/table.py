#!/usr/bin/env python3
"""The distillation experiment's table (bench/experiments/distill/run.sh), over one or more seeds.

usage: table.py RUNS_DIR...   (each RUNS_DIR, one seed, holds scratch/, scratch-<updates>/, online/,
topk1/ ... sample8/ and the caches cache-<variant>/)

Per variant, mean (min … max) over the seeds:
 * the final validation loss (every student makes the same 574 updates on the same batches);
 * compute-equivalent saving against scratch: 1 − (the variant's FLOPs) / (the FLOPs a scratch
   run needs for the same final loss), the latter interpolated in log FLOPs between the scratch
   runs at 0.75x, 1x, 1.5x and 2x the updates, each annealed at its own end — the rule of
   `scion report --baseline` (core/report/savings.cpp). Three charges for the teacher: none (the
   student's own FLOPs), its forward passes charged to this one student (online: what the run
   counted; cached: the cache's manifest), and a cache's cost amortised over the five students
   that read one teacher's caches. "≥" marks a loss below the 2x scratch run's (the saving is at
   least that), "≤" one above the 0.75x run's;
 * the student's tokens/s over the first stage (the teacher's: online, from a cache, or none;
   the mean of its logged updates, as the runs went, two at a time on two cores: speed.sh
   measures it alone), and the cache's bytes per token and size on disk (one seed's)."""
import json
import math
import os
import sys

VARIANTS = ["scratch", "online", "topk1", "topk10", "topk100", "topk257", "sample8"]


def lines(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def final(run):
    """(final validation loss, FLOPs at it, mean tokens/s of the first stage)."""
    m = lines(run)
    ev = [l for l in m if "ppl/loss" in l]
    # tokens/s while the teacher works: the first stage's updates (the second is the same run
    # for every student)
    first = next(l["stage"] for l in m if "tokens_per_s" in l)
    train = [l for l in m if "tokens_per_s" in l and l["stage"] == first]
    return ev[-1]["ppl/loss"], ev[-1]["flops"], sum(l["tokens_per_s"] for l in train) / len(train)


def needed(curve, loss):
    """The scratch FLOPs that end at `loss` (curve: sorted (flops, loss)), and a bound mark."""
    for (f0, l0), (f1, l1) in zip(curve, curve[1:]):
        if min(l0, l1) <= loss <= max(l0, l1) and l0 != l1:
            t = (loss - l0) / (l1 - l0)
            return math.exp(math.log(f0) + t * (math.log(f1) - math.log(f0))), ""
    if loss < min(l for _, l in curve):
        return curve[-1][0], "≥"
    return curve[0][0], "≤"


def seed_rows(out):
    scratch = [os.path.join(out, d) for d in os.listdir(out) if d == "scratch" or d.startswith("scratch-")]
    finals = [final(r) for r in scratch if os.path.isfile(os.path.join(r, "student.safetensors"))]
    curve = sorted((flops, loss) for loss, flops, _ in finals)
    student_flops = final(os.path.join(out, "scratch"))[1]
    cached = [v for v in VARIANTS if os.path.isdir(os.path.join(out, "cache-" + v))]
    rows = {}
    for v in VARIANTS:
        run = os.path.join(out, v)
        if not os.path.isfile(os.path.join(run, "student.safetensors")):
            continue
        loss, flops, tps = final(run)
        row = {"loss": loss, "tps": tps}
        cache = os.path.join(out, "cache-" + v)
        if v == "online":
            charges = {"none": student_flops, "one": flops, "amortised": flops}
        elif os.path.isdir(cache):
            with open(os.path.join(cache, "manifest.json")) as f:
                man = json.load(f)
            t = man["teacher_forward_flops"]
            charges = {"none": flops, "one": flops + t, "amortised": flops + t / len(cached)}
            row["bytes"] = man["bytes_per_token"]
            row["disk"] = sum(os.path.getsize(os.path.join(cache, x)) for x in os.listdir(cache))
        else:
            charges = {"none": flops, "one": flops, "amortised": flops}
        need, mark = needed(curve, loss)
        for k, f in charges.items():
            row[k] = (1 - f / need, mark)
        rows[v] = row
    return rows, len(cached)


def agg(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    mean = sum(xs) / len(xs)
    return fmt(mean) if len(xs) == 1 else "%s (%s … %s)" % (fmt(mean), fmt(min(xs)), fmt(max(xs)))


def main(dirs):
    per_seed = [seed_rows(d) for d in dirs]
    n_cached = max(n for _, n in per_seed)
    print("over %d seed(s): mean (min … max)" % len(dirs))
    print("| variant | final valid loss | saving, student FLOPs | + teacher, one student | "
          "+ teacher, amortised over %d | student tokens/s | bytes/token | cache on disk |" % n_cached)
    print("|---|---|---|---|---|---|---|---|")
    pct = lambda x: "%.1f%%" % (100 * x if abs(x) >= 5e-4 else 0.0)  # no "-0.0%"
    for v in VARIANTS:
        rs = [rows[v] for rows, _ in per_seed if v in rows]
        if not rs:
            continue
        cells = [v, agg([r["loss"] for r in rs], lambda x: "%.4f" % x)]
        for k in ("none", "one", "amortised"):
            marks = {r[k][1] for r in rs if r[k][1]}
            cells.append("".join(sorted(marks)) + agg([r[k][0] for r in rs], pct))
        cells.append(agg([r["tps"] for r in rs], lambda x: "%.0f" % x))
        cells.append(str(rs[0].get("bytes", "-")))
        cells.append("%.1f MB" % (rs[0]["disk"] / 1e6) if "disk" in rs[0] else "-")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["runs/distill-s1"])
