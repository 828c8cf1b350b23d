#!/usr/bin/env python3
"""Compares the experiment's variants with the from-scratch student, seed by seed.

usage: compare.py RUNS_DIR...   (each RUNS_DIR, one seed, holds scratch/, scratch-<updates>/
and the variants ki/, ki300/, grow/, grow2/, msg/; bench/experiments/run.sh writes them)

Every variant is given the compute of the 600-update scratch run (to within 1%), each run's
learning rate annealed at its own end. Three measures, FLOPs by Scion's count (teacher
forwards and the small model's training included):
 * the final validation loss at that equal compute, against scratch's;
 * compute-equivalent saving: 1 − (the variant's FLOPs) / (the FLOPs a scratch run needs for
   the same final loss), the latter interpolated (in log FLOPs) between the scratch runs at
   0.75x, 1x, 1.5x and 2x the budget — the cleanest figure, since every run it compares is
   annealed at its end;
 * first crossing: the first evaluation at which the variant's validation loss is at or
   below scratch's final one, in steps and FLOPs, against the steps and FLOPs scratch itself
   took to first reach it (the same criterion for both). This is what the papers quote, but
   with cosine schedules over a few hundred updates a run crosses a loss mostly while its own
   learning rate anneals, so it favours the run whose schedule ends first."""
import glob
import json
import math
import os
import statistics
import sys

VARIANTS = ["ki", "ki300", "grow", "grow2", "msg"]
NAMES = {"ki": "KI, α 1→0 over 150 updates", "ki300": "KI, α 1→0 over 300 updates", "grow": "bert2BERT AKI growth",
         "grow2": "bert2BERT AKI + two-stage sub-models", "msg": "MSG masked growth"}


def evals(run):
    out = []
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "ppl/loss" in m:
                out.append((m["step"], m["flops"], m["ppl/loss"]))
    if not out:
        sys.exit(f"{run}: no ppl/loss evaluations in metrics.jsonl")
    return out


def reach(points, target):
    for step, flops, loss in points:
        if loss <= target:
            return step, flops
    return None, None


def scratch_flops_for(curve, loss):
    """FLOPs a scratch run needs to end at `loss`; (value, '<' or '>' when out of range)."""
    for (f0, l0), (f1, l1) in zip(curve, curve[1:]):
        if min(l0, l1) <= loss <= max(l0, l1) and l0 != l1:
            t = (loss - l0) / (l1 - l0)
            return math.exp(math.log(f0) + t * (math.log(f1) - math.log(f0))), ""
    if loss < min(l for _, l in curve):
        return curve[-1][0], ">"  # better than the largest scratch budget
    return curve[0][0], "<"


rows = {v: [] for v in VARIANTS}
for d in sys.argv[1:]:
    base = evals(os.path.join(d, "scratch"))
    target, b_flops_total = base[-1][2], base[-1][1]
    b_step, b_flops = reach(base, target)
    curve = sorted((evals(r)[-1][1], evals(r)[-1][2]) for r in glob.glob(os.path.join(d, "scratch*")))
    print(f"{d}: scratch final validation loss {target:.4f} (step {base[-1][0]}, {b_flops_total:.3e} FLOPs), "
          f"first reached at step {b_step}; scratch at other budgets: "
          + ", ".join(f"{f / b_flops_total:.2f}x → {l:.4f}" for f, l in curve))
    for v in VARIANTS:
        pts = evals(os.path.join(d, v))
        step, flops = reach(pts, target)
        final_flops, final = pts[-1][1], pts[-1][2]
        need, bound = scratch_flops_for(curve, final)
        r = {"final": final, "delta": final - target, "equiv": 1 - final_flops / need, "bound": bound}
        if step is not None:
            r.update(steps_saved=1 - step / b_step, compute_saved=1 - flops / b_flops)
        rows[v].append(r)
        cross = (f"crosses at step {step} ({100 * r['steps_saved']:.1f}% steps, {100 * r['compute_saved']:.1f}% "
                 f"FLOPs saved)" if step is not None else "never crosses")
        print(f"  {v:6s} final {final:.4f} at {final_flops / b_flops_total:.3f}x scratch's FLOPs "
              f"({r['delta']:+.4f}); compute-equivalent saving {bound}{100 * r['equiv']:.1f}%; {cross}")


def summary(xs, pct=True):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:+.3f}")
    return f"{f(statistics.mean(xs))} ({f(min(xs))} … {f(max(xs))})" if len(xs) > 1 else f(xs[0])


print(f"\nover {len(sys.argv) - 1} seed(s): mean (min … max)")
print("| run | final val. loss − scratch's, equal compute | compute-equivalent saving | first crossing: steps saved | first crossing: FLOPs saved |")
print("|---|---|---|---|---|")
for v in VARIANTS:
    rs = rows[v]
    bounds = "".join(sorted({r["bound"] for r in rs if r["bound"]}))
    note = f" ({bounds} bound in some seeds)" if bounds else ""
    crossed = sum("steps_saved" in r for r in rs)
    cn = "" if crossed == len(rs) else f" ({crossed}/{len(rs)} seeds cross)"
    print(f"| {NAMES[v]} | {summary([r['delta'] for r in rs], False)} | {summary([r['equiv'] for r in rs])}{note} | "
          f"{summary([r.get('steps_saved') for r in rs])}{cn} | {summary([r.get('compute_saved') for r in rs])} |")
