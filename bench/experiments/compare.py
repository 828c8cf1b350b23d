#!/usr/bin/env python3
"""Compares the experiment's variants with the from-scratch student, seed by seed.

usage: compare.py RUNS_DIR...   (each RUNS_DIR, one seed, holds scratch/, scratch-<updates>/
and the variants ki/, ki300/, grow/, grow2/, msg/ (bench/experiments/run.sh writes them), or
those $VARIANTS names (growth_llm.sh's))

The figures are `scion report`'s (`--baseline`, core/report/savings.cpp): this script only
names the runs and prints the table (and writes the page, runs/exp-savings.html, or
$COMPARE_REPORT). Every variant is given the compute of the 600-update scratch run (to within
1%), each run's learning rate annealed at its own end. Three measures, FLOPs by Scion's count
(teacher forwards and the small model's training included):
 * the final validation loss at that equal compute, against scratch's;
 * compute-equivalent saving: 1 − (the variant's FLOPs) / (the FLOPs a scratch run needs for
   the same final loss), the latter interpolated (in log FLOPs) between the scratch runs at
   0.75x, 1x, 1.5x and 2x the budget — the cleanest figure, since every run it compares is
   annealed at its end;
 * first crossing: the first evaluation at which the variant's validation loss is at or
   below scratch's final one, in steps and FLOPs, against the steps and FLOPs scratch itself
   took to first reach it (the same criterion for both). This is what the papers quote, but
   with cosine schedules over a few hundred updates a run crosses a loss mostly while its own
   learning rate anneals, so it favours the run whose schedule ends first.
Several seeds: mean (min … max) over them."""
import glob
import os
import subprocess
import sys

# The variants compared ($VARIANTS, space-separated, to compare others: growth_llm.sh's).
VARIANTS = os.environ.get("VARIANTS", "ki ki300 grow grow2 msg").split()
NAMES = {"ki": "KI, α 1→0 over 150 updates", "ki300": "KI, α 1→0 over 300 updates", "grow": "bert2BERT AKI growth", "aki": "bert2BERT AKI growth",
         "grow2": "bert2BERT AKI + two-stage sub-models", "msg": "MSG masked growth",
         "gstack-50": "G_stack ×4, grown after 50 updates", "gstack-150": "G_stack ×4, grown after 150 updates",
         "gstack-400": "G_stack ×4, grown after 400 updates", "hyperclone-300": "HyperCloning ×2, grown after 300 updates",
         "sheared-dbl": "Sheared-LLaMA + dynamic batch loading", "sheared-uniform": "Sheared-LLaMA, equal domain weights",
         "minitron": "Minitron importance pruning + distillation"}

dirs = sys.argv[1:]
if not dirs:
    sys.exit(__doc__)
scion = os.environ.get("SCION", "build/bin/scion")
out = os.environ.get("COMPARE_REPORT", "runs/exp-savings.html")
runs = [os.path.join(d, v) for d in dirs for v in VARIANTS]
base = [r for d in dirs for r in sorted(glob.glob(os.path.join(d, "scratch*")))]
cmd = [scion, "report", *runs, "--baseline", ",".join(base), "--metric", "ppl/loss", "--out", out]
res = subprocess.run(cmd, capture_output=True, text=True)
if res.returncode != 0:
    sys.exit(res.stderr.strip() or f"{' '.join(cmd)} failed")
print(f"over {len(dirs)} seed(s): mean (min … max); the page: {out}")
for line in res.stdout.splitlines():
    if line.startswith("|"):
        cells = line.split(" | ")
        label = cells[0][2:]
        if line.startswith("| ") and label in NAMES:
            line = "| " + NAMES[label] + " | " + " | ".join(cells[1:])
        print(line)
