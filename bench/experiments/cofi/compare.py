"""The CoFi experiment's table (docs/methods.md), from the runs run.sh wrote.

  compare.py RUNS_DIR                 the markdown table
  compare.py --baseline DENSE PRUNED  width, heads and updates of the from-scratch baseline
"""
import json
import math
import struct
import sys

TOKENS_PER_STEP = 8 * 64  # batch 8 x 64 tokens (teacher.toml, prune.toml)
VOCAB, CONTEXT, LAYERS = 257, 64, 4


def config(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["scion.config"])


def arch(c):
    """(heads per layer, FFN units per layer, head size, width) of a scion.config."""
    L, w = c["layers"], c["width"]
    heads = c.get("layer_heads", [c["heads"]] * L)
    ffn = c.get("layer_ffn", [c["ffn"] or 4 * w] * L)
    return heads, ffn, c.get("head_size", w // c["heads"]), w


def prunable(c):
    """The blocks' weight matrices (4·d·d_h per head, 2·d per unit): the size a from-scratch
    baseline is matched to."""
    heads, ffn, hs, w = arch(c)
    return sum(4 * w * hs * h + 2 * w * f for h, f in zip(heads, ffn))


def reference_dense(c):
    """CoFi's prunable_model_size (l0_module.py): per layer (4d² + 4d) + (2dF + 5d)."""
    heads, ffn, hs, w = arch(c)
    return sum(4 * w * hs * h + 4 * w + 2 * w * f + 5 * w for h, f in zip(heads, ffn))


def reference_kept(c, dense_c):
    """CoFi's count of a pruned model (as its expected size counts): per layer
    width·heads·(4d² + 4d)/(H·d) + 2·width·units, d and H the dense model's."""
    heads, ffn, _, w = arch(c)
    dh, _, dhs, d = arch(dense_c)
    return sum(w * (h * (4 * d * dhs * H + 4 * d) / (H * d) + 2 * f) for h, f, H in zip(heads, ffn, dh))


def metrics(run):
    return [json.loads(l) for l in open(run + "/metrics.jsonl")]


def last(run, key):
    return [m[key] for m in metrics(run) if key in m][-1]


def params_gpt(width, heads, ffn):
    """All parameters of a uniform model.gpt (embeddings included), as the FLOP counter counts."""
    per_layer = 4 * width + (3 * width * width + 3 * width) + (width * width + width) + 2 * width * ffn + ffn + width
    return VOCAB * width + CONTEXT * width + LAYERS * per_layer + 2 * width


def baseline(dense, pruned):
    """A dense GPT with about the pruned model's prunable parameters, trained for the FLOPs the
    pruning run spent (distillation with its teacher's forward passes, then fine-tuning)."""
    target = prunable(config(pruned + "/student.safetensors"))
    # 4 layers of 12·w² prunable weights (head size 32 where it divides, FFN 4w).
    w = max(8, int(round(math.sqrt(target / (LAYERS * 12)) / 8)) * 8)
    heads = max(1, w // 32)
    while w % heads:
        heads -= 1
    flops = last(pruned, "flops")
    per_step = TOKENS_PER_STEP * (6 * params_gpt(w, heads, 4 * w) + 12 * LAYERS * w * CONTEXT)
    return w, heads, int(math.ceil(flops / per_step))


def speeds(runs):
    out = {}
    for l in open(runs + "/speed.jsonl"):
        j = json.loads(l)
        out[j["file"]] = j["tokens_per_s"]
    return out


def table(runs):
    dense_c = config(runs + "/dense/model.safetensors")
    base = prunable(dense_c)
    ref_base = reference_dense(dense_c)
    sp = speeds(runs)
    dense_speed = sp[runs + "/dense/model.safetensors"]
    dense_ppl = last(runs + "/dense", "ppl/ppl")
    print("| target | expected ŝ at the end of pruning | achieved sparsity (pruned model) | heads / FFN units left "
          "| val. ppl pruned + fine-tuned | dense | from scratch, same size and FLOPs "
          "| from scratch, same size and updates | forward tokens/s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in (50, 75, 90, 95):
        run = f"{runs}/t{t}"
        c = config(run + "/student.safetensors")
        heads, ffn, _, w = arch(c)
        achieved = 1 - reference_kept(c, dense_c) / ref_base
        s = sp[run + "/student.safetensors"]
        scratch = last(f"{runs}/scratch{t}", "ppl/ppl")
        sc = config(f"{runs}/scratch{t}/model.safetensors")
        same_updates = last(f"{runs}/tokens{t}", "ppl/ppl")
        print(f"| {t}% | {last(run, 'cofi/expected_sparsity'):.3f} | {achieved:.3f} (width {w}) "
              f"| {sum(heads)} / {sum(ffn)} | {last(run, 'ppl/ppl'):.2f} | {dense_ppl:.2f} "
              f"| {scratch:.2f} (width {sc['width']}, {last(f'{runs}/scratch{t}', 'step')} updates) "
              f"| {same_updates:.2f} | {s:.0f} | {s / dense_speed:.2f}x |")
    print(f"\ndense model: {sum(arch(dense_c)[0])} heads, {sum(arch(dense_c)[1])} FFN units, "
          f"{base} prunable weights ({ref_base} with the biases the reference counts), forward {dense_speed:.0f} tokens/s")


if __name__ == "__main__":
    if sys.argv[1] == "--baseline":
        print(*baseline(sys.argv[2], sys.argv[3]))
    else:
        table(sys.argv[1])
