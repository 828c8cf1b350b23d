#!/usr/bin/env python3
"""The same GPT or Llama training step as bench_gpt_train, in PyTorch (the reference).

CPU: Debian's python3 (python3-torch): /usr/bin/python3 bench/torch_gpt_train.py --threads 2
GPU (scripts/device-check.sh): --device cuda --bf16 --compile --sdpa, which is PyTorch's fast path:
bf16 autocast, torch.compile of the model, F.scaled_dot_product_attention (flash attention),
fused AdamW. Prints tokens/s and, with --peak-flops, MFU by the count 6N + 6*L*C*T FLOPs/token.
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, h, sdpa=False):
        super().__init__()
        self.h = h
        self.sdpa = sdpa
        self.ln_1 = nn.LayerNorm(c)
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.ln_2 = nn.LayerNorm(c)
        self.c_fc = nn.Linear(c, 4 * c)
        self.mlp_proj = nn.Linear(4 * c, c)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = [t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v)]
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.h)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            y = att @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, ctx, layers, c, h, sdpa=False):
        super().__init__()
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Embedding(ctx, c)
        self.h = nn.ModuleList([Block(c, h, sdpa) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(c)
        for name, p in self.named_parameters():  # GPT-2's initialisation, as Scion's model.gpt
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02 / (math.sqrt(2 * layers) if "proj" in name else 1.0))
            elif "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


class RMSNorm(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x, cos, sin):
    d = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., d:], x[..., :d]], dim=-1) * sin


class LlamaBlock(nn.Module):
    """Hugging Face's LlamaDecoderLayer, written out: RMSNorm, rotary q/k, repeat_kv, SwiGLU."""

    def __init__(self, c, h, kv, f, sdpa=False):
        super().__init__()
        self.h, self.kv, self.d, self.sdpa = h, kv, c // h, sdpa
        self.input_layernorm = RMSNorm(c)
        self.q_proj = nn.Linear(c, c, bias=False)
        self.k_proj = nn.Linear(c, kv * self.d, bias=False)
        self.v_proj = nn.Linear(c, kv * self.d, bias=False)
        self.o_proj = nn.Linear(c, c, bias=False)
        self.post_attention_layernorm = RMSNorm(c)
        self.gate_proj = nn.Linear(c, f, bias=False)
        self.up_proj = nn.Linear(c, f, bias=False)
        self.down_proj = nn.Linear(f, c, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        a = self.input_layernorm(x)
        q = self.q_proj(a).view(B, T, self.h, self.d).transpose(1, 2)
        k = self.k_proj(a).view(B, T, self.kv, self.d).transpose(1, 2)
        v = self.v_proj(a).view(B, T, self.kv, self.d).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k, v = k.repeat_interleave(self.h // self.kv, 1), v.repeat_interleave(self.h // self.kv, 1)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(self.d)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.o_proj(y.transpose(1, 2).reshape(B, T, C))
        m = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(m)) * self.up_proj(m))


class Llama(nn.Module):
    def __init__(self, vocab, ctx, layers, c, h, kv, f, sdpa=False):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, c)
        self.layers = nn.ModuleList([LlamaBlock(c, h, kv, f, sdpa) for _ in range(layers)])
        self.norm = RMSNorm(c)
        self.lm_head = nn.Linear(c, vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
        d = c // h
        inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        ang = torch.arange(ctx, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], -1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.embed_tokens(idx)
        for b in self.layers:
            x = b(x, self.cos[:T], self.sin[:T])
        return self.lm_head(self.norm(x))


def main():
    ap = argparse.ArgumentParser()
    for k, d in [("threads", 2), ("steps", 10), ("layers", 4), ("width", 256), ("heads", 4), ("context", 128),
                 ("batch", 8), ("vocab", 50304)]:
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--family", default="gpt2", help="gpt2 | llama (as bench_gpt_train --family)")
    ap.add_argument("--kv-heads", type=int, default=2, help="llama: key/value heads")
    ap.add_argument("--ffn", type=int, default=0, help="llama: SwiGLU units (0 = 8/3 of the width, up to 64)")
    ap.add_argument("--bf16", action="store_true", help="torch.autocast(device, dtype=torch.bfloat16) around forward")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--sdpa", action="store_true", help="F.scaled_dot_product_attention (flash) instead of explicit")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation happens there)")
    ap.add_argument("--peak-flops", type=float, default=0.0, help="device peak FLOP/s, for MFU")
    a = ap.parse_args()
    # An old PyTorch (Debian's 1.13 on the CPU rehearsal) has neither: say so, run without.
    if a.sdpa and not hasattr(F, "scaled_dot_product_attention"):
        print(f"torch  note: torch {torch.__version__} has no F.scaled_dot_product_attention; --sdpa ignored")
        a.sdpa = False
    if a.compile and not hasattr(torch, "compile"):
        print(f"torch  note: torch {torch.__version__} has no torch.compile; --compile ignored")
        a.compile = False
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if a.family == "llama":
        ffn = a.ffn or (8 * a.width // 3 + 63) // 64 * 64
        model = Llama(a.vocab, a.context, a.layers, a.width, a.heads, a.kv_heads, ffn, sdpa=a.sdpa).to(dev)
    else:
        model = GPT(a.vocab, a.context, a.layers, a.width, a.heads, sdpa=a.sdpa).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    fwd = torch.compile(model) if a.compile else model
    opt_kw = {"fused": True} if cuda else {}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, **opt_kw)
    idx = torch.randint(0, a.vocab, (a.batch, a.context), device=dev)
    tgt = torch.randint(0, a.vocab, (a.batch, a.context), device=dev)

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    total = 0.0
    for s in range(a.steps + a.warmup):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            loss = F.cross_entropy(fwd(idx).view(-1, a.vocab).float(), tgt.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        if s >= a.warmup:
            total += time.perf_counter() - t0
    tok = a.batch * a.context * a.steps
    tps = tok / total
    flops_per_token = 6 * n_params + 6 * a.layers * a.width * a.context
    print(f"torch  device={dev} threads={a.threads} torch={torch.__version__} autocast_bf16={a.bf16} "
          f"compile={a.compile} sdpa={a.sdpa} params={n_params}")
    line = f"torch  tokens/s={tps:.0f}  step={total / a.steps * 1e3:.1f} ms  final loss {loss.item():.4f}"
    line += f"  flops_per_token={flops_per_token}"
    if a.peak_flops > 0:
        line += f"  MFU={100.0 * tps * flops_per_token / a.peak_flops:.1f}%"
    print(line)


if __name__ == "__main__":
    main()
