#!/usr/bin/python3
"""PyTorch autograd reference for the trainer's manual backward.

For some of the checkpoints model_reference.py wrote, this makes a LoRA adapter (A and B random, so every
gradient is non-zero) on all seven projections, two examples with loss masks, and computes with
autograd, running the examples one by one (unpacked), for
  loss = sum of masked token losses / number of masked tokens:
  - the loss and the gradients of every LoRA A and B (PEFT semantics: y = xW^T + s (x A^T) B^T, s = alpha/r)
  - the gradients of every base weight (full fine-tuning, no adapter)
and one AdamW step (torch.optim.AdamW) on the LoRA parameters from those gradients.
The C++ test packs both examples into one sequence and must reproduce all of it.

DPO, with the same adapter as the policy and the base without it as the reference: two preference pairs
(chosen, rejected) = (ex1, ex2) and (ex3, ex1), the loss averaged over the pairs, for each loss type as
TRL defines it (sigmoid: -logsigmoid(beta h), hinge: relu(1 - beta h), ipo: (h - 1/(2 beta))^2 on
per-token mean log-probabilities), h = (policy - ref)(chosen) - (policy - ref)(rejected): the loss and
every LoRA gradient. And full-parameter DPO (sigmoid), the policy being the base with that adapter merged
into its weights: the loss and the gradient of every weight.

Usage: train_reference.py --models DIR   (adds train_case.json and expected_*.safetensors to each case dir)
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_reference import inv_freq_for, rms_norm, rotate_half, write_safetensors  # noqa: E402

torch.set_num_threads(1)
CASES = ["llama_f32", "qwen2_tied_f32", "qwen3_f32", "mistral_window_f32", "llama_bias_f32"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PARENT = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def load_weights(path):
    import struct
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        assert info["dtype"] == "F32"
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype=np.float32).reshape(info["shape"]).copy())
    return out


def forward_loss(cfg, w, lora, scaling, ids, targets):
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
    qi, kj = torch.arange(T)[:, None], torch.arange(T)[None, :]
    blocked = kj > qi
    sw = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else None
    if sw:
        blocked = blocked | (kj <= qi - sw)
    mask = torch.zeros(T, T).masked_fill(blocked, float("-inf"))

    def lin(h, prefix, target):
        y = h @ w[prefix + target + ".weight"].T
        if prefix + target + ".bias" in w:
            y = y + w[prefix + target + ".bias"]
        key = prefix + target
        if key in lora:
            a, b = lora[key]
            y = y + scaling * ((h @ a.T) @ b.T)
        return y

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.", "q_proj").view(T, H, D)
        k = lin(h, p + "self_attn.", "k_proj").view(T, KV, D)
        v = lin(h, p + "self_attn.", "v_proj").view(T, KV, D)
        if cfg["model_type"] == "qwen3":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        probs = torch.softmax((q @ k.transpose(1, 2)) * (D ** -0.5) + mask, dim=-1)
        o = (probs @ v).transpose(0, 1).reshape(T, H * D)
        x = x + lin(o, p + "self_attn.", "o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.", "gate_proj")
        u = lin(h, p + "mlp.", "up_proj")
        x = x + lin(torch.nn.functional.silu(g) * u, p + "mlp.", "down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    logits = x @ head.T
    t = torch.tensor(targets)
    keep = t >= 0
    return torch.nn.functional.cross_entropy(logits[keep], t[keep], reduction="sum"), int(keep.sum())


def run_case(d, seed):
    cfg = json.load(open(os.path.join(d, "config.json")))
    base = load_weights(os.path.join(d, "model.safetensors"))
    gen = torch.Generator().manual_seed(seed)
    V = cfg["vocab_size"]
    ex1 = torch.randint(0, V, (9,), generator=gen).tolist()
    ex2 = torch.randint(0, V, (7,), generator=gen).tolist()
    # Targets: next token, masked on a prompt-like prefix and at the last position of each example.
    t1 = [-1, -1, -1] + ex1[4:] + [-1]
    t2 = [-1] + ex2[2:] + [-1]
    r, alpha = 4, 8.0
    scaling = alpha / r
    C = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim", C // H)
    I = cfg["intermediate_size"]
    shapes = {"q_proj": (H * D, C), "k_proj": (KV * D, C), "v_proj": (KV * D, C), "o_proj": (C, H * D),
              "gate_proj": (I, C), "up_proj": (I, C), "down_proj": (C, I)}
    lora = {}
    for l in range(cfg["num_hidden_layers"]):
        for t in TARGETS:
            out, inp = shapes[t]
            a = (torch.rand(r, inp, generator=gen) * 2 - 1) / inp ** 0.5
            b = torch.randn(out, r, generator=gen) * 0.1
            lora[f"model.layers.{l}.{PARENT[t]}.{t}"] = (a.requires_grad_(), b.requires_grad_())

    def total(weights, lo):
        l1, n1 = forward_loss(cfg, weights, lo, scaling, ex1, t1)
        l2, n2 = forward_loss(cfg, weights, lo, scaling, ex2, t2)
        n = n1 + n2
        return (l1 + l2) / n, n

    loss, n = total(base, lora)
    loss.backward()
    peft = lambda key, ab: f"base_model.model.{key}.lora_{ab}.weight"
    init = {}
    grads = {}
    for key, (a, b) in lora.items():
        init[peft(key, "A")] = a.detach().clone()
        init[peft(key, "B")] = b.detach().clone()
        grads[peft(key, "A")] = a.grad.clone()
        grads[peft(key, "B")] = b.grad.clone()
    write_safetensors(os.path.join(d, "train_lora_init.safetensors"), init)
    write_safetensors(os.path.join(d, "expected_lora_grads.safetensors"), grads)
    # One AdamW step on the LoRA parameters with these gradients.
    params = [p for pair in lora.values() for p in pair]
    opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    opt.step()
    after = {}
    for key, (a, b) in lora.items():
        after[peft(key, "A")] = a.detach().clone()
        after[peft(key, "B")] = b.detach().clone()
    write_safetensors(os.path.join(d, "expected_lora_after_adamw.safetensors"), after)
    # Full fine-tuning gradients (no adapter).
    full = {k: v.clone().requires_grad_() for k, v in base.items()}
    floss, _ = total(full, {})
    floss.backward()
    write_safetensors(os.path.join(d, "expected_full_grads.safetensors"), {k: v.grad for k, v in full.items()})
    # DPO: a third example, drawn last so the fixtures above do not move.
    ex3 = torch.randint(0, V, (8,), generator=gen).tolist()
    t3 = [-1, -1] + ex3[3:] + [-1]
    examples = [(ex1, t1), (ex2, t2), (ex3, t3)]
    pairs = [(0, 1), (2, 0)]
    beta = 0.1
    with torch.no_grad():
        ref = [forward_loss(cfg, base, {}, scaling, e, t) for e, t in examples]
    # The policy is the adapter as initialised (the AdamW step above moved it in place).
    with torch.no_grad():
        for key, (a, b) in lora.items():
            a.copy_(init[peft(key, "A")])
            b.copy_(init[peft(key, "B")])
    dpo_losses = {}
    for kind in ["sigmoid", "hinge", "ipo"]:
        for a, b in lora.values():
            a.grad, b.grad = None, None
        policy = [forward_loss(cfg, base, lora, scaling, e, t) for e, t in examples]

        def logp(i, which):
            loss_sum, count = which[i]
            return -loss_sum / count if kind == "ipo" else -loss_sum

        terms = []
        for c, rj in pairs:
            h = (logp(c, policy) - logp(c, ref)) - (logp(rj, policy) - logp(rj, ref))
            if kind == "sigmoid":
                terms.append(-torch.nn.functional.logsigmoid(beta * h))
            elif kind == "hinge":
                terms.append(torch.relu(1 - beta * h))
            else:
                terms.append((h - 1 / (2 * beta)) ** 2)
        dpo_loss = sum(terms) / len(terms)
        dpo_loss.backward()
        dpo_losses[kind] = float(dpo_loss)
        g = {}
        for key, (a, b) in lora.items():
            g[peft(key, "A")] = a.grad.clone()
            g[peft(key, "B")] = b.grad.clone()
        write_safetensors(os.path.join(d, f"expected_dpo_{kind}_grads.safetensors"), g)
    # Full-parameter DPO (sigmoid): the policy is the base with the adapter merged into its weights
    # (W + s B A, every weight a leaf), the reference the base: the loss (the adapter's, up to rounding)
    # and the gradient of every weight.
    with torch.no_grad():
        merged = {k: v.clone() for k, v in base.items()}
        for key, (a, b) in lora.items():
            merged[key + ".weight"] += scaling * (b @ a)
    for v in merged.values():
        v.requires_grad_()
    policy = [forward_loss(cfg, merged, {}, scaling, e, t) for e, t in examples]
    terms = []
    for c, rj in pairs:
        h = (-policy[c][0] + ref[c][0]) - (-policy[rj][0] + ref[rj][0])
        terms.append(-torch.nn.functional.logsigmoid(beta * h))
    full_dpo_loss = sum(terms) / len(terms)
    full_dpo_loss.backward()
    write_safetensors(os.path.join(d, "expected_dpo_full_grads.safetensors"), {k: v.grad for k, v in merged.items()})
    # Mixed precision as PyTorch does it (torch.autocast("cpu", bfloat16)): the LoRA gradients of the
    # same init, for training.precision: bf16 to be held to PyTorch's own distance from f32.
    ac = {key: (init[peft(key, "A")].clone().requires_grad_(), init[peft(key, "B")].clone().requires_grad_())
          for key in lora}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ac_loss, _ = total(base, ac)
    ac_loss.float().backward()
    g = {}
    for key, (a, b) in ac.items():
        g[peft(key, "A")] = a.grad.float().clone()
        g[peft(key, "B")] = b.grad.float().clone()
    write_safetensors(os.path.join(d, "expected_lora_grads_autocast_bf16.safetensors"), g)
    with open(os.path.join(d, "train_case.json"), "w") as f:
        json.dump({"examples": [{"tokens": ex1, "targets": t1}, {"tokens": ex2, "targets": t2}],
                   "lora": {"r": r, "alpha": alpha}, "loss": float(loss), "full_loss": float(floss),
                   "tokens": n, "autocast_bf16_loss": float(ac_loss), "adamw": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.1},
                   "dpo": {"examples": [{"tokens": e, "targets": t} for e, t in examples], "pairs": pairs,
                           "beta": beta, "loss": dpo_losses, "full_sigmoid_loss": float(full_dpo_loss)}}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    for i, name in enumerate(CASES):
        run_case(os.path.join(args.models, name), 500 + i)
    print(f"wrote training references for {len(CASES)} models")


if __name__ == "__main__":
    main()
