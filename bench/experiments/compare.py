#!/usr/bin/env python3
"""Compares the experiment's variants with the from-scratch student, seed by seed.

usage: compare.py RUNS_DIR...   (each RUNS_DIR, one seed, holds scratch/ and the variants)

For each variant: the first evaluation at which its validation loss (ppl/loss) is at or
below the scratch run's final one, and the steps and cumulative FLOPs it took, against the
steps and FLOPs the scratch run itself took to first reach that loss (the same criterion for
both: evaluation noise can put the scratch run's own first crossing before its last step);
and its validation loss at the scratch run's total compute (the last evaluation within it).
FLOPs are Scion's count: teacher forwards and the small model's training included."""
import json
import os
import statistics
import sys

VARIANTS = ["ki", "grow", "grow2", "msg"]
NAMES = {"ki": "KI (teacher 2L/128, α 1→0 over 150 updates)", "grow": "bert2BERT AKI growth",
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


def loss_within(points, budget):
    # The runs' budgets are matched to within 1% (bench/experiments/*.toml).
    inside = [p for p in points if p[1] <= budget * 1.01]
    return inside[-1][2] if inside else None


rows = {v: [] for v in VARIANTS}
for d in sys.argv[1:]:
    base = evals(os.path.join(d, "scratch"))
    target, b_flops_total = base[-1][2], base[-1][1]
    b_step, b_flops = reach(base, target)
    print(f"{d}: scratch final validation loss {target:.4f} (step {base[-1][0]}), first reached at step "
          f"{b_step}, {b_flops:.3e} FLOPs")
    for v in VARIANTS:
        pts = evals(os.path.join(d, v))
        step, flops = reach(pts, target)
        r = {"final": pts[-1][2], "budget": loss_within(pts, b_flops_total), "base_budget": target}
        if step is not None:
            r.update(step=step, flops=flops, steps_saved=1 - step / b_step, compute_saved=1 - flops / b_flops)
        rows[v].append(r)
        got = (f"step {step}, {flops:.3e} FLOPs: {100 * r['steps_saved']:.1f}% steps, "
               f"{100 * r['compute_saved']:.1f}% compute saved" if step is not None else "not reached")
        budget = f"{r['budget']:.4f}" if r["budget"] is not None else "—"
        print(f"  {v:6s} {got}; loss at scratch's FLOPs {budget}; final {r['final']:.4f} "
              f"({pts[-1][1] / b_flops_total:.3f}× scratch's FLOPs)")


def summary(xs, pct=True):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
    return f"{f(statistics.mean(xs))} ({f(min(xs))} … {f(max(xs))})" if len(xs) > 1 else f(xs[0])


print(f"\nover {len(sys.argv) - 1} seed(s): mean (min … max)")
print("| run | reached (seeds) | steps saved | compute saved | val. loss at scratch's FLOPs − scratch's | final val. loss |")
print("|---|---|---|---|---|---|")
for v in VARIANTS:
    rs = rows[v]
    print(f"| {NAMES[v]} | {sum('step' in r for r in rs)}/{len(rs)} | {summary([r.get('steps_saved') for r in rs])} | "
          f"{summary([r.get('compute_saved') for r in rs])} | "
          f"{summary([r['budget'] - r['base_budget'] if r['budget'] is not None else None for r in rs], False)} | "
          f"{summary([r['final'] for r in rs], False)} |")
