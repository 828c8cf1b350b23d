#!/usr/bin/env python3
"""The same GPT training step as bench_gpt_train, in PyTorch (the reference).

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


def main():
    ap = argparse.ArgumentParser()
    for k, d in [("threads", 2), ("steps", 10), ("layers", 4), ("width", 256), ("heads", 4), ("context", 128),
                 ("batch", 8), ("vocab", 50304)]:
        ap.add_argument("--" + k, type=int, default=d)
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
