#!/usr/bin/env python3
"""Prints the TRIME experiment's tables (bench/experiments/trime/run.sh writes RUNS_DIR).

usage: summarise.py RUNS_DIR

Per variant and domain: validation perplexity of the LM alone, with kNN-LM, with TRIME's long
memory (joint normalisation over a FIFO of the document's earlier positions) and with both;
training throughput (mean tokens/s of the logged lines, the first left out); datastore build
time and kNN search queries per second."""
import json
import os
import sys

VARIANTS = [("vanilla", "vanilla (CE)"), ("trime", "TrimeLM"), ("trime_long", "TrimeLM_long"), ("trime_ext", "TrimeLM_ext")]
DOMAINS = ["reference", "news", "literature", "biomedical", "cs"]


def load(path):
    with open(path) as f:
        text = f.read()
    return json.loads(text[text.index("{"):])


def tokens_per_s(run):
    rates = []
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if "tokens_per_s" in j:
                rates.append(j["tokens_per_s"])
    rates = rates[1:] or rates
    return sum(rates) / len(rates)


def main(root):
    print("| model | eval | " + " | ".join(DOMAINS) + " | mean |")
    print("|---|---|" + "---|" * (len(DOMAINS) + 1))
    speed = {}
    for v, name in VARIANTS:
        d = os.path.join(root, v)
        long_ = load(os.path.join(d, "eval_long.json"))["knn"]
        none = load(os.path.join(d, "eval_none.json"))["knn"]
        rows = [("LM", long_, "lm_ppl"), ("LM + kNN", none, "ppl"), ("long memory", long_, "memory_ppl"),
                ("long memory + kNN", long_, "ppl")]
        for label, src, key in rows:
            cells = ["%.2f" % src[dom + "/" + key] for dom in DOMAINS]
            print("| %s | %s | %s | %.2f |" % (name, label, " | ".join(cells), src[key]))
        speed[v] = (tokens_per_s(d), load(os.path.join(d, "eval_long.json")))
    print()
    base = speed["vanilla"][0]
    print("| model | train tokens/s | vs vanilla | datastore keys | build s | keys/s | kNN queries/s |")
    print("|---|---|---|---|---|---|---|")
    for v, name in VARIANTS:
        tps, ev = speed[v]
        ds = ev["dstore"]
        print("| %s | %.0f | %+.1f%% | %d | %.1f | %.0f | %.0f |" % (name, tps, 100 * (tps / base - 1), ds["keys"], ds["build_s"],
                                                                   ds["keys_per_s"], ev["knn"]["knn_queries_per_s"]))
    ivf = os.path.join(root, "trime_ext", "eval_ivfpq.json")
    if os.path.exists(ivf):
        ev = load(ivf)
        print("| TrimeLM_ext, IVF256,PQ16 store | | | %d | %.1f | %.0f | %.0f (long memory + kNN mean ppl %.2f) |" % (
            ev["dstore"]["keys"], ev["dstore"]["build_s"], ev["dstore"]["keys_per_s"], ev["knn"]["knn_queries_per_s"],
            ev["knn"]["ppl"]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/exp-trime")
