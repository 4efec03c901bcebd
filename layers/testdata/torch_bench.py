"""The neuroshard model in PyTorch, for side-by-side benchmarks (make bench).

Same shapes and computation as layers/graph.go: byte embedding, pre-norm blocks of RMSNorm,
causal attention with rotary positions (GPT-NeoX halves), SwiGLU MLP, final RMSNorm and LM head.
Prints one JSON object of tokens/s per workload and thread count.

usage: torch_bench.py VOCAB DMODEL LAYERS HEADS MLP CONTEXT THREADS...
"""
import json
import sys
import time

import torch

V, D, L, H, F, C = (int(a) for a in sys.argv[1:7])
THREADS = [int(a) for a in sys.argv[7:]] or [1]
HD = D // H


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        p = lambda *s: torch.nn.Parameter(torch.randn(*s, generator=g) * 0.02)
        self.embed = p(V, D)
        self.blocks = torch.nn.ModuleList()
        for _ in range(L):
            b = torch.nn.Module()
            b.attn_norm, b.mlp_norm = torch.nn.Parameter(torch.ones(D)), torch.nn.Parameter(torch.ones(D))
            b.wq, b.wk, b.wv, b.wo = p(D, D), p(D, D), p(D, D), p(D, D)
            b.w1, b.w3, b.w2 = p(D, F), p(D, F), p(F, D)
            self.blocks.append(b)
        self.head_norm, self.head = torch.nn.Parameter(torch.ones(D)), p(D, V)
        inv = 10000 ** (-torch.arange(0, HD // 2, dtype=torch.float32) * 2 / HD)
        ang = torch.arange(C, dtype=torch.float32)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = ang.cos(), ang.sin()

    @staticmethod
    def norm(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * g

    def rope(self, x, start):
        t = x.shape[2]
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        x1, x2 = x[..., :HD // 2], x[..., HD // 2:]
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin

    def forward(self, ids, cache=None, start=0):
        x = self.embed[ids]
        b, t, _ = x.shape
        for i, blk in enumerate(self.blocks):
            h = self.norm(x, blk.attn_norm)
            q = (h @ blk.wq).view(b, t, H, HD).transpose(1, 2)
            k = (h @ blk.wk).view(b, t, H, HD).transpose(1, 2)
            v = (h @ blk.wv).view(b, t, H, HD).transpose(1, 2)
            q, k = self.rope(q, start), self.rope(k, start)
            if cache is not None:
                ck, cv = cache[i]
                ck[:, :, start:start + t], cv[:, :, start:start + t] = k, v
                k, v = ck[:, :, :start + t], cv[:, :, :start + t]
            s = q @ k.transpose(-1, -2) / HD ** 0.5
            mask = torch.ones(t, start + t, dtype=torch.bool).tril(start)
            s = s.masked_fill(~mask, float("-inf"))
            a = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, D)
            x = x + a @ blk.wo
            m = self.norm(x, blk.mlp_norm)
            u = m @ blk.w1
            x = x + (torch.nn.functional.silu(u) * (m @ blk.w3)) @ blk.w2
        return self.norm(x, self.head_norm) @ self.head


def rate(fn, tokens, reps):
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return tokens * reps / (time.perf_counter() - start)


def decode(model, batch, n):
    cache = [(torch.zeros(batch, H, C, HD), torch.zeros(batch, H, C, HD)) for _ in range(L)]
    ids = torch.zeros(batch, 1, dtype=torch.long)
    with torch.no_grad():
        for pos in range(n):
            logits = model(ids, cache, pos)
            ids = logits[:, -1].argmax(-1, keepdim=True)


def main():
    model = Model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    fwd_ids = torch.randint(0, V, (8, min(128, C)))
    tr_ids = torch.randint(0, V, (8, min(64, C) + 1))
    out = {}
    for th in THREADS:
        torch.set_num_threads(th)

        def forward():
            with torch.no_grad():
                model(fwd_ids)

        def train():
            logits = model(tr_ids[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tr_ids[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

        n = min(256, C)
        out[str(th)] = {
            "forward_tokens_per_s": rate(forward, fwd_ids.numel(), 3),
            "train_tokens_per_s": rate(train, 8 * (tr_ids.shape[1] - 1), 3),
            "decode_tokens_per_s": rate(lambda: decode(model, 1, n), n, 1),
            "decode_batch8_tokens_per_s": rate(lambda: decode(model, 8, n), 8 * n, 1),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
