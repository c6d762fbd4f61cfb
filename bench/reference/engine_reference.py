#!/usr/bin/python3
"""PyTorch eager reference for bench/engine_bench: the same model (read from its safetensors file),
transformers-style eager forward (f32), prefill of N tokens and KV-cache decode, plus the sgemm GFLOP/s
this process gets from its BLAS. Prints one JSON line.

Run by engine_bench with OPENBLAS_CORETYPE=SKYLAKEX, or HASWELL on an AVX2-only CPU (Debian's OpenBLAS
otherwise picks Prescott kernels on CPUs that report no model name) and the same thread count as tuneloop.
"""
import json
import struct
import sys
import time

import numpy as np
import torch


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype=np.float32).reshape(info["shape"]).copy())
    return out


def rms(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Ref:
    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.H, self.KV, self.D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.eps = cfg["rms_norm_eps"]
        D = self.D
        self.inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        self.head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]

    def forward(self, ids, cache, start):
        w, H, KV, D = self.w, self.H, self.KV, self.D
        T = len(ids)
        x = torch.nn.functional.embedding(torch.tensor(ids), w["model.embed_tokens.weight"])
        pos = torch.arange(start, start + T).float()
        freqs = torch.outer(pos, self.inv)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()
        L = start + T
        mask = torch.full((T, L), float("-inf")).triu(start + 1) if T > 1 else None
        F = torch.nn.functional
        for l in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = rms(x, w[p + "input_layernorm.weight"], self.eps)
            q = F.linear(h, w[p + "self_attn.q_proj.weight"], w.get(p + "self_attn.q_proj.bias")).view(T, H, D).transpose(0, 1)
            k = F.linear(h, w[p + "self_attn.k_proj.weight"], w.get(p + "self_attn.k_proj.bias")).view(T, KV, D).transpose(0, 1)
            v = F.linear(h, w[p + "self_attn.v_proj.weight"], w.get(p + "self_attn.v_proj.bias")).view(T, KV, D).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if l in cache:
                k = torch.cat((cache[l][0], k), 1)
                v = torch.cat((cache[l][1], v), 1)
            cache[l] = (k, v)
            kk = k.repeat_interleave(H // KV, 0)
            vv = v.repeat_interleave(H // KV, 0)
            s = (q @ kk.transpose(1, 2)) * (D ** -0.5)
            if mask is not None:
                s = s + mask
            o = (torch.softmax(s, -1) @ vv).transpose(0, 1).reshape(T, H * D)
            x = x + F.linear(o, w[p + "self_attn.o_proj.weight"])
            h = rms(x, w[p + "post_attention_layernorm.weight"], self.eps)
            x = x + F.linear(F.silu(F.linear(h, w[p + "mlp.gate_proj.weight"])) * F.linear(h, w[p + "mlp.up_proj.weight"]),
                             w[p + "mlp.down_proj.weight"])
        x = rms(x[-1:], w["model.norm.weight"], self.eps)
        return x @ self.head.T


def main():
    model_dir, threads, prefill_n, decode_n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    serve = "--serve" in sys.argv[6:]
    torch.set_num_threads(threads)
    cfg = json.load(open(model_dir + "/config.json"))
    ref = Ref(cfg, load(model_dir + "/model.safetensors"))
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    gf = []
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b)
        gf.append(2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    ids = [int(i) for i in torch.randint(0, cfg["vocab_size"], (prefill_n,), generator=torch.Generator().manual_seed(0))]

    def one_prefill():
        t = time.perf_counter()
        ref.forward(ids, {}, 0)
        return prefill_n / (time.perf_counter() - t)

    def one_decode():
        cache = {}
        logits = ref.forward(ids[:64], cache, 0)
        nxt = int(logits.argmax())
        t = time.perf_counter()
        for i in range(decode_n):
            logits = ref.forward([nxt], cache, 64 + i)
            nxt = int(logits.argmax())
        return decode_n / (time.perf_counter() - t)

    prefill, decode = [], []
    with torch.inference_mode():
        ref.forward(ids[:32], {}, 0)
        if serve:
            # Interleaved with tuneloop's runs: one measurement per command line.
            print(json.dumps({"sgemm_gflops": float(np.median(gf)), "threads": torch.get_num_threads()}), flush=True)
            for line in sys.stdin:
                cmd = line.strip()
                if cmd == "prefill":
                    print(one_prefill(), flush=True)
                elif cmd == "decode":
                    print(one_decode(), flush=True)
                else:
                    return
            return
        for _ in range(reps):
            prefill.append(one_prefill())
        for _ in range(reps):
            decode.append(one_decode())
    print(json.dumps({"sgemm_gflops": float(np.median(gf)), "prefill_tps": prefill, "decode_tps": decode,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
