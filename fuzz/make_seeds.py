#!/usr/bin/env python3
"""Seed corpora of the fuzz targets, from the repository's own files (graphs/, data/) and
from files shaped as Scion writes them (safetensors checkpoints, llm.c shards, latest.json,
state.json, metrics.jsonl). Usage: make_seeds.py REPO OUT_DIR; writes OUT_DIR/<target>/*."""
import json
import os
import struct
import sys

SEP = b"\n----\n"  # fuzz/fuzz_input.h: split_parts


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


def shard(tokens):
    head = [20240520, 1, len(tokens)] + [0] * 253
    return struct.pack("<256i", *head) + struct.pack("<%dH" % len(tokens), *tokens)


def main(repo, out):
    # graphs: every in-tree graph, alone and with overrides
    gdir = os.path.join(repo, "graphs")
    for g in sorted(os.listdir(gdir)):
        if g.endswith(".toml"):
            text = open(os.path.join(gdir, g), "rb").read()
            put(out, "fuzz_graph", g, text)
            put(out, "fuzz_graph", g + ".set", text + SEP + b"stages.0.steps=3\nrun.seed=7\nrun.device=cpu")
    # safetensors: a model checkpoint as Scion writes it, and each dtype
    cfg = json.dumps({"vocab": 8, "context": 4, "layers": 1, "width": 4, "heads": 2, "ffn": 8, "tied": True})
    f32 = lambda n: struct.pack("<%df" % n, *[0.25 * i for i in range(n)])
    put(out, "fuzz_safetensors", "model.safetensors",
        safetensors({"wte.weight": ("F32", [8, 4], f32(32)), "wpe.weight": ("F32", [4, 4], f32(16))},
                    {"scion.plugin": "model.gpt", "scion.config": cfg}))
    for dt, size in [("F32", 4), ("BF16", 2), ("F16", 2), ("I32", 4), ("I64", 8), ("U16", 2), ("U8", 1), ("BOOL", 1)]:
        put(out, "fuzz_safetensors", dt + ".safetensors", safetensors({"t": (dt, [2, 3], bytes(range(6 * size)))}))
    put(out, "fuzz_safetensors", "empty.safetensors", safetensors({}))
    # llm.c shards: bytes of the repository's corpus as tokens
    text = open(os.path.join(repo, "data/corpus/news/valid.txt"), "rb").read()[:2000]
    put(out, "fuzz_shard", "news.bin", shard(list(text)))
    put(out, "fuzz_shard", "empty.bin", shard([]))
    # GPT-2 BPE: the first entries of the real encoder.json and vocab.bpe
    enc = json.load(open(os.path.join(repo, "data/gpt2/encoder.json"), encoding="utf-8"))
    merges = open(os.path.join(repo, "data/gpt2/vocab.bpe"), "rb").read().split(b"\n")
    for n, m in [(300, 40), (1000, 300)]:
        small = dict(list(enc.items())[:n])
        small["<|endoftext|>"] = len(small)
        put(out, "fuzz_gpt2_tokenizer", "gpt2_%d" % n,
            json.dumps(small, ensure_ascii=False).encode() + SEP + b"\n".join(merges[: m + 1]))
    # WordPiece: the head of the real vocab.txt (special tokens, ##pieces)
    vocab = open(os.path.join(repo, "data/bert/vocab.txt"), "rb").read().split(b"\n")
    put(out, "fuzz_wordpiece", "bert_head.txt", b"\n".join(vocab[:1200]) + b"\n")
    put(out, "fuzz_wordpiece", "bert_mixed.txt", b"\n".join(vocab[:110] + vocab[2000:2400] + vocab[-300:]))
    # latest.json + state.json as the executor writes them
    state = {"step": 12, "stage_index": 1, "stage_step": 2, "tokens": 1536.0, "flops": 1.5e9, "elapsed_s": 3.25,
             "nodes": {"corpus": {"position": 640, "epoch": 0}}}
    put(out, "fuzz_checkpoint_state", "resume",
        json.dumps({"checkpoint": "step_1", "step": 12}).encode() + SEP + json.dumps(state).encode())
    put(out, "fuzz_checkpoint_state", "no_nodes",
        json.dumps({"checkpoint": "step_1", "step": 1}).encode() + SEP +
        json.dumps({k: v for k, v in state.items() if k != "nodes"}).encode())
    # metrics.jsonl (+ graph.toml): training lines, evaluations, stage changes, a NaN
    lines = []
    for s in range(1, 7):
        lines.append({"step": s, "stage": "a" if s < 4 else "b", "tokens": 128 * s, "flops": 1e6 * s,
                      "loss": 5.0 / s, "lr": 1e-3, "tokens_per_s": 1000.0, "elapsed_s": 0.1 * s})
        if s % 2 == 0:
            lines.append({"step": s, "stage": "a" if s < 4 else "b", "tokens": 128 * s, "flops": 1e6 * s,
                          "ppl/loss": 4.0 / s, "ppl/ppl": 50.0 / s})
    body = b"\n".join(json.dumps(l).encode() for l in lines) + b"\n"
    graph = open(os.path.join(gdir, "gpt_pretrain.toml"), "rb").read()
    put(out, "fuzz_metrics", "run", body + SEP + graph)
    put(out, "fuzz_metrics", "run_nan", body + b'{"step": 7, "loss": NaN, "tokens": 900}\nnot json\n')
    # Hugging Face config.json (+ model.safetensors.index.json) of each family read
    hf = [
        ("llama3", {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
                    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
                    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                    "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False,
                    "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16"}),
        ("qwen2", {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
                   "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                   "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
                   "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
                   "use_sliding_window": False, "tie_word_embeddings": True}),
        ("mistral", {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 32768,
                     "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
                     "rms_norm_eps": 1e-05, "sliding_window": None}),
        ("gpt2", {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,
                  "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": None, "activation_function": "gelu_new",
                  "layer_norm_epsilon": 1e-05}),
        ("bert", {"architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 30522,
                  "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "max_position_embeddings": 512, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
                  "type_vocab_size": 2}),
    ]
    index = {"metadata": {"total_size": 1024},
             "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "model.norm.weight": "model-00002-of-00002.safetensors"}}
    for name, cfg in hf:
        put(out, "fuzz_hf_config", name, json.dumps(cfg).encode() + SEP + json.dumps(index).encode())
    # a kNN-LM datastore's manifest.json as memory.datastore writes it (the target's files beside
    # it are 4 keys of 4 floats, 4 values and a 32-byte index; these hashes are not theirs)
    manifest = {"format": 2, "complete": True, "fingerprint": "0123456789abcdef",
                "model_config": {"vocab": 257, "context": 16, "layers": 1, "width": 4, "heads": 1},
                "size": 4, "dim": 4, "seq_len": 16, "index": "Flat", "metric": "ip",
                "files": {"keys.f32": {"bytes": 64, "xxh3": "00112233445566ff"},
                          "vals.i32": {"bytes": 16, "xxh3": "8899aabbccddeeff"},
                          "index.faiss": {"bytes": 32, "xxh3": "0f1e2d3c4b5a6978"}}}
    put(out, "fuzz_datastore_manifest", "manifest", json.dumps(manifest).encode())
    put(out, "fuzz_datastore_manifest", "manifest_l2_ivf",
        json.dumps(dict(manifest, metric="l2", index="IVF4,Flat")).encode())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
