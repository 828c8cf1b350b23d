#!/usr/bin/env python3
"""The ELLE experiment's table: AP and AP+ at the end of each domain's stage, per variant,
mean (and range over seeds when there are several), with the FLOPs each run used.

usage: compare.py RUNS_DIR...   (each holding elle/, final/, final_noreplay/, small/, small_noreplay/)
"""
import json
import sys

DOMAINS = ["reference", "news", "literature", "biomedical", "cs"]
VARIANTS = [("elle", "ELLE (2L/64 -> 6L/128, warmup, replay 0.1)"),
            ("final", "final size 6L/128 from the start, replay 0.1"),
            ("final_noreplay", "final size 6L/128 from the start, no replay"),
            ("small", "small size 2L/64, never grown, replay 0.1"),
            ("small_noreplay", "small size 2L/64, never grown, no replay")]
EV = "lifelong"


def lines(run):
    with open(run + "/metrics.jsonl") as f:
        return [json.loads(l) for l in f if l.strip()]


def at_domain_ends(run):
    """The last evaluation of each domain's stage, and the run's total FLOPs."""
    last, flops = {}, 0.0
    for m in lines(run):
        flops = max(flops, m.get("flops", 0.0))
        if EV + "/ap" in m and m["stage"] in DOMAINS:
            last[m["stage"]] = m
    return last, flops


def fmt(vals):
    if not vals:
        return "-"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{min(vals):.2f}, {max(vals):.2f}]"


def main():
    dirs = sys.argv[1:]
    print(f"seeds: {len(dirs)}\n")
    head = "| variant | " + " | ".join(f"AP after {d}" for d in DOMAINS) + " | AP+ after " + " | AP+ after ".join(DOMAINS[1:]) + " | training FLOPs |"
    print(head)
    print("|" + "---|" * (2 + len(DOMAINS) + len(DOMAINS) - 1))
    for key, label in VARIANTS:
        ap = {d: [] for d in DOMAINS}
        app = {d: [] for d in DOMAINS}
        fl = []
        for d in dirs:
            try:
                last, flops = at_domain_ends(f"{d}/{key}")
            except FileNotFoundError:
                continue
            fl.append(flops)
            for dom, m in last.items():
                ap[dom].append(m[EV + "/ap"])
                if EV + "/ap_plus" in m:
                    app[dom].append(m[EV + "/ap_plus"])
        if not fl:
            continue
        row = [label] + [fmt(ap[d]) for d in DOMAINS] + [fmt(app[d]) for d in DOMAINS[1:]]
        row.append(f"{sum(fl) / len(fl) / 1e12:.3f} T")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
