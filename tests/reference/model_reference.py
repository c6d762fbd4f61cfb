#!/usr/bin/python3
"""PyTorch reference for the engine: writes tiny random Llama-family checkpoints in real Hugging Face
layout (config.json + safetensors, one of them sharded with model.safetensors.index.json) and the logits
that transformers' semantics give for a fixed token sequence, plus a greedy continuation.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-numpy). transformers is not packaged,
so the forward is written out here from the transformers modelling code it mirrors (LlamaRMSNorm,
rotate_half RoPE with default/linear/llama3 inv_freq, repeat_kv GQA, eager attention with a causal and
optional sliding-window mask and an f32 softmax, SwiGLU MLP, qwen2 q/k/v bias, qwen3 q_norm/k_norm).

Usage: model_reference.py --out DIR     (one sub-directory per case)
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_num_threads(1)

DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def make_weights(cfg, gen):
    C, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    D = cfg.get("head_dim", C // H)
    mt = cfg["model_type"]
    qkv_bias = mt == "qwen2" or cfg.get("attention_bias", False)
    o_bias = mt == "llama" and cfg.get("attention_bias", False)
    mlp_bias = mt == "llama" and cfg.get("mlp_bias", False)

    def rnd(*shape, std=0.15):
        return torch.randn(*shape, generator=gen) * std

    def norm(n):
        return 1.0 + torch.randn(n, generator=gen) * 0.1

    w = {"model.embed_tokens.weight": rnd(V, C, std=1.0), "model.norm.weight": norm(C)}
    if not cfg.get("tie_word_embeddings", False):
        w["lm_head.weight"] = rnd(V, C)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = rnd(H * D, C)
        w[p + "self_attn.k_proj.weight"] = rnd(KV * D, C)
        w[p + "self_attn.v_proj.weight"] = rnd(KV * D, C)
        w[p + "self_attn.o_proj.weight"] = rnd(C, H * D)
        if qkv_bias:
            w[p + "self_attn.q_proj.bias"] = rnd(H * D, std=0.1)
            w[p + "self_attn.k_proj.bias"] = rnd(KV * D, std=0.1)
            w[p + "self_attn.v_proj.bias"] = rnd(KV * D, std=0.1)
        if o_bias:
            w[p + "self_attn.o_proj.bias"] = rnd(C, std=0.1)
        if mt == "qwen3":
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        w[p + "mlp.gate_proj.weight"] = rnd(I, C)
        w[p + "mlp.up_proj.weight"] = rnd(I, C)
        w[p + "mlp.down_proj.weight"] = rnd(C, I)
        if mlp_bias:
            w[p + "mlp.gate_proj.bias"] = rnd(I, std=0.1)
            w[p + "mlp.up_proj.bias"] = rnd(I, std=0.1)
            w[p + "mlp.down_proj.bias"] = rnd(C, std=0.1)
    return w


def inv_freq_for(cfg, D):
    base = cfg.get("rope_theta", 10000.0)
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "linear":
            inv_freq = inv_freq / rs["factor"]
        elif kind == "llama3":
            factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wavelen, high_wavelen = old / lo, old / hi
            wavelen = 2 * math.pi / inv_freq
            inv_llama = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
            smooth = (old / wavelen - lo) / (hi - lo)
            smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama
            medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
            inv_freq = torch.where(medium, smoothed, inv_llama)
    return inv_freq


def rms_norm(x, w, eps):
    xf = x.float()
    var = xf.pow(2).mean(-1, keepdim=True)
    return w * (xf * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(cfg, w, ids):
    """Logits (T, V) in f32 for one sequence, transformers semantics."""
    w = {k: v.float() for k, v in w.items()}
    C = cfg["hidden_size"]
    H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    D = cfg.get("head_dim", C // H)
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = len(ids)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    pos = torch.arange(T).float()
    inv = inv_freq_for(cfg, D)
    freqs = (inv[:, None] @ pos[None, :]).transpose(0, 1)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.zeros(T, T)
    qi = torch.arange(T)[:, None]
    kj = torch.arange(T)[None, :]
    blocked = kj > qi
    sw = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else None
    if sw:
        blocked = blocked | (kj <= qi - sw)
    mask[blocked] = torch.finfo(torch.float32).min

    def lin(h, name):
        y = h @ w[name + ".weight"].T
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        return y

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj").view(T, H, D)
        k = lin(h, p + "self_attn.k_proj").view(T, KV, D)
        v = lin(h, p + "self_attn.v_proj").view(T, KV, D)
        if cfg["model_type"] == "qwen3":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        scores = (q @ k.transpose(1, 2)) * (D ** -0.5) + mask
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        o = (probs @ v).transpose(0, 1).reshape(T, H * D)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.gate_proj")
        u = lin(h, p + "mlp.up_proj")
        x = x + lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T


def base_cfg(model_type, **kw):
    cfg = {
        "architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
                           "qwen3": "Qwen3ForCausalLM"}[model_type]],
        "model_type": model_type,
        "vocab_size": 97,
        "hidden_size": 64,
        "intermediate_size": 88,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    cfg.update(kw)
    return cfg


CASES = {
    "llama_f32": (base_cfg("llama"), torch.float32, 1),
    # intermediate_size 96 (three 32-wide panels) in some cases: the engine fuses the MLP's gate/up GEMM
    # with SwiGLU only when the features fill whole panels, so these check the fused path (with and
    # without biases) and the 88-wide ones the two-step path.
    "llama_bias_f32": (base_cfg("llama", attention_bias=True, mlp_bias=True, num_key_value_heads=4,
                                intermediate_size=96), torch.float32, 1),
    "llama3_rope_bf16": (base_cfg("llama", rope_theta=500000.0, torch_dtype="bfloat16", tie_word_embeddings=True,
                                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
                         torch.bfloat16, 1),
    "llama_linear_sharded_f16": (base_cfg("llama", rope_scaling={"type": "linear", "factor": 2.0},
                                          torch_dtype="float16", num_hidden_layers=3), torch.float16, 2),
    "mistral_window_f32": (base_cfg("mistral", sliding_window=5, head_dim=16), torch.float32, 1),
    "qwen2_tied_f32": (base_cfg("qwen2", tie_word_embeddings=True, rope_theta=1000000.0, eos_token_id=[2, 3],
                                intermediate_size=96), torch.float32, 1),
    "qwen3_f32": (base_cfg("qwen3", hidden_size=48, head_dim=16, rope_theta=1000000.0, attention_bias=False,
                           intermediate_size=96), torch.float32, 1),
    "qwen2_bf16": (base_cfg("qwen2", torch_dtype="bfloat16", num_attention_heads=8, num_key_value_heads=1, head_dim=8),
                   torch.bfloat16, 1),
}


def write_case(out, name, cfg, dtype, shards, seed):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    w = {k: v.to(dtype) for k, v in make_weights(cfg, gen).items()}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = sorted(w)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), w, {"format": "pt"})
    else:
        per = (len(names) + shards - 1) // shards
        weight_map, total = {}, 0
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: w[n] for n in names[s * per:(s + 1) * per]}
            write_safetensors(os.path.join(d, fname), part, {"format": "pt"})
            for n, t in part.items():
                weight_map[n] = fname
                total += t.numel() * t.element_size()
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)

    ids = torch.randint(0, cfg["vocab_size"], (24,), generator=gen).tolist()
    logits = forward(cfg, w, ids)
    write_safetensors(os.path.join(d, "expected_logits.safetensors"), {"logits": logits.contiguous()})
    # Greedy continuation, recomputing the whole sequence each step (what HF generate does without cache).
    seq = list(ids[:8])
    greedy = []
    for _ in range(8):
        nxt = int(torch.argmax(forward(cfg, w, seq)[-1]))
        greedy.append(nxt)
        seq.append(nxt)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"ids": ids, "greedy_prompt": ids[:8], "greedy": greedy,
                   "parameters": sum(t.numel() for t in w.values())}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for i, (name, (cfg, dtype, shards)) in enumerate(sorted(CASES.items())):
        write_case(args.out, name, cfg, dtype, shards, seed=1000 + i)
    print(f"wrote {len(CASES)} reference models to {args.out}")


if __name__ == "__main__":
    main()
