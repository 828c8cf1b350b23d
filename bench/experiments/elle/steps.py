#!/usr/bin/env python3
"""Steps per domain for a baseline so that its training FLOPs equal ELLE's, domain by domain.

usage: steps.py ELLE_RUN PROBE_RUN  ->  prints --set stages.<i>.steps=<n> (and its lr warmup) for the baseline

ELLE's budget for domain d is the FLOPs of d's stage plus those of the warmup before it (the
expansion's cost is paid in the domain it prepares). PROBE_RUN is the baseline graph run for
one update per stage: its first update's FLOPs are the baseline's FLOPs per update (a fixed
model and batch, so every update costs the same; replayed rows are rows of the batch).
"""
import json
import sys


def lines(run):
    with open(run + "/metrics.jsonl") as f:
        return [json.loads(l) for l in f if l.strip()]


def flops_at_stage_end(run):
    """Cumulative FLOPs after each stage's last update, in stage order."""
    out = {}
    for m in lines(run):
        if "loss" in m:  # a training line
            out[m["stage"]] = m["flops"]
    return out


def main():
    elle, probe = sys.argv[1], sys.argv[2]
    ends = flops_at_stage_end(elle)
    stages = list(ends)  # insertion order = stage order
    budget, prev = {}, 0.0
    for s in stages:
        domain = s[len("recover_"):] if s.startswith("recover_") else s
        budget[domain] = budget.get(domain, 0.0) + ends[s] - prev
        prev = ends[s]
    per_step = next(m["flops"] for m in lines(probe) if "loss" in m)
    baseline_stages = list(flops_at_stage_end(probe))
    args = []
    for i, s in enumerate(baseline_stages):
        n = max(1, round(budget[s] / per_step))
        # The graphs' learning-rate warmup is a twelfth of a domain's updates: kept so.
        args.append(f"--set stages.{i}.steps={n} --set stages.{i}.optimizer.warmup={max(1, n // 12)}")
    print(" ".join(args))


if __name__ == "__main__":
    main()
