#!/usr/bin/env python3
"""The pruning experiment's tables: per-domain validation perplexity at the end of each run
(mean over seeds), each model's parameters and forward speed against the dense model's, and
where dynamic batch loading moved the domain weights.

usage: table.py SPEED_JSONL RUNS_DIR...   (run.sh's runs/shape-exp/s<seed> folders)
"""
import json
import math
import sys

DOMAINS = ["reference", "news", "literature", "biomedical", "cs"]
VARIANTS = [("scratch", "from scratch, same shape and FLOPs"), ("sheared-dbl", "Sheared-LLaMA + dynamic batch loading"),
            ("sheared-uniform", "Sheared-LLaMA, equal domain weights"), ("minitron", "Minitron + distillation")]


def last_eval(run):
    rows = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
    return [r for r in rows if "ppl/cs/loss" in r][-1]


def main():
    speed_file, dirs = sys.argv[1], sys.argv[2:]
    print("| variant | " + " | ".join(DOMAINS) + " | mean |")
    print("|---" * (len(DOMAINS) + 2) + "|")
    for v, name in VARIANTS:
        ppl = {d: sum(math.exp(last_eval(f"{s}/{v}")[f"ppl/{d}/loss"]) for s in dirs) / len(dirs) for d in DOMAINS}
        mean = sum(ppl.values()) / len(ppl)
        print(f"| {name} | " + " | ".join(f"{ppl[d]:.2f}" for d in DOMAINS) + f" | {mean:.2f} |")
    print()
    rows = [json.loads(l) for l in open(speed_file)]
    dense = rows[0]
    print("| model | parameters | forward tokens/s | speed-up |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['file']} | {r['params']} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / dense['tokens_per_s']:.2f}x |")
    print()
    print("| seed | " + " | ".join(DOMAINS) + " |")
    print("|---" * (len(DOMAINS) + 1) + "|")
    for s in dirs:
        w = last_eval(f"{s}/sheared-dbl")
        print(f"| {s} | " + " | ".join(f"{w['mix/weight/' + d]:.3f}" for d in DOMAINS) + " |")


if __name__ == "__main__":
    main()
