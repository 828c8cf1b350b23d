#!/usr/bin/env python3
"""Updates after growth that give a two-stage growth run the compute of a from-scratch run.

usage: equal_steps.py SCRATCH_RUN PROBE_RUN SMALL_UPDATES  ->  prints the grown stage's updates

The budget is SCRATCH_RUN's FLOPs at its last update. PROBE_RUN is the growth graph run for one
update per stage: its first update's FLOPs are the small model's per update, its second's the
grown model's (a fixed model and batch per stage, so every update of a stage costs the same).
"""
import json
import sys


def flops(run):
    with open(run + "/metrics.jsonl") as f:
        return [json.loads(l)["flops"] for l in f if l.strip() and "loss" in json.loads(l)]


def main():
    scratch, probe, small = sys.argv[1], sys.argv[2], int(sys.argv[3])
    budget = flops(scratch)[-1]
    f = flops(probe)
    per_small, per_grown = f[0], f[1] - f[0]
    print(round((budget - small * per_small) / per_grown))


if __name__ == "__main__":
    main()
