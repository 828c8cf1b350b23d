#!/usr/bin/env python3
"""Reads runs' metrics.jsonl and reports, for a target validation loss (the baseline's final
one), the steps and FLOPs each run needs to reach it. usage: compare.py BASELINE RUN..."""
import json
import sys


def evals(run):
    out = []
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            if "ppl/loss" in m:
                out.append((m["step"], m["flops"], m["ppl/loss"]))
    return out


def reach(points, target):
    for step, flops, loss in points:
        if loss <= target:
            return step, flops
    return None, None


base = evals(sys.argv[1])
target = base[-1][2]
b_step, b_flops = base[-1][0], base[-1][1]
print(f"target: {sys.argv[1]} final validation loss {target:.4f} at step {b_step}, {b_flops:.3e} FLOPs")
for run in sys.argv[2:]:
    pts = evals(run)
    step, flops = reach(pts, target)
    final = pts[-1][2]
    if step is None:
        print(f"{run}: does not reach it (final {final:.4f})")
    else:
        print(f"{run}: reaches it at step {step} ({100 * (1 - step / b_step):.1f}% fewer steps), "
              f"{flops:.3e} FLOPs ({100 * (1 - flops / b_flops):.1f}% less compute); final {final:.4f}")
