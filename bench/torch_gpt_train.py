#!/usr/bin/env python3
"""The same GPT training step as bench_gpt_train, in PyTorch on the CPU (the reference).

Run with Debian's python3 (python3-torch): /usr/bin/python3 bench/torch_gpt_train.py --threads 2
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
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
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.h)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, ctx, layers, c, h):
        super().__init__()
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Embedding(ctx, c)
        self.h = nn.ModuleList([Block(c, h) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(c)
        for name, p in self.named_parameters():  # GPT-2's initialisation, as Scion's model.gpt
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02 / (math.sqrt(2 * layers) if "proj" in name else 1.0))
            elif "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    ap = argparse.ArgumentParser()
    for k, d in [("threads", 2), ("steps", 10), ("layers", 4), ("width", 256), ("heads", 4), ("context", 128),
                 ("batch", 8), ("vocab", 50304)]:
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--bf16", action="store_true", help='torch.autocast("cpu", dtype=torch.bfloat16) around forward')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT(a.vocab, a.context, a.layers, a.width, a.heads)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    idx = torch.randint(0, a.vocab, (a.batch, a.context))
    tgt = torch.randint(0, a.vocab, (a.batch, a.context))
    total = 0.0
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = F.cross_entropy(model(idx).view(-1, a.vocab).float(), tgt.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s > 0:
            total += time.perf_counter() - t0
    tok = a.batch * a.context * a.steps
    print(f"torch  threads={a.threads} torch={torch.__version__} autocast_bf16={a.bf16}")
    print(f"torch  tokens/s={tok / total:.0f}  step={total / a.steps * 1e3:.1f} ms  final loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
