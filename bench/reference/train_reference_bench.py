#!/usr/bin/python3
"""PyTorch eager training reference for bench/train_bench: one sequence of T tokens, LoRA (manual PEFT
semantics, r on all 7 projections) or full fine-tuning, autograd + AdamW, f32, on the bench model's
weights. Prints one JSON line: median step seconds, peak RSS, this process's sgemm GFLOP/s.
dpo: the LoRA adapter trained with TRL's sigmoid DPO loss on one pair, chosen and rejected T/2 tokens
each as a batch of two (TRL's concatenated forward), against reference log-probabilities computed once
before the first step (TRL's precompute_ref_log_probs, what tuneloop does).
lora-bf16: the LoRA step in mixed precision at PyTorch's best: the frozen weights cast to bf16 once (as
from_pretrained(torch_dtype=bfloat16) holds them) and the step under torch.autocast("cpu", bfloat16), so
every linear and matmul is a oneDNN bf16 GEMM (AMX where the CPU has it) while the LoRA weights, their
gradients and AdamW stay f32. Its "sgemm_gflops" is then a bf16 2048^3 matmul.
Run with OPENBLAS_CORETYPE=SKYLAKEX (HASWELL on an AVX2-only CPU) and the same threads as tuneloop."""
import json, resource, struct, sys, time
import numpy as np
import torch
import torch.nn.functional as F

model_dir, method, T, r, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
cfg = json.load(open(model_dir + "/config.json"))
with open(model_dir + "/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
w = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    b, e = info["data_offsets"]
    w[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype=np.float32).reshape(info["shape"]).copy())
del data
H, KV, D, C = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["hidden_size"]
eps = cfg["rms_norm_eps"]
inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2).float() / D))
B, S = (2, T // 2) if method == "dpo" else (1, T)  # sequences per step, tokens each
freqs = torch.outer(torch.arange(S).float(), inv)
emb = torch.cat((freqs, freqs), -1)
cos, sin = emb.cos(), emb.sin()
mask = torch.full((S, S), float("-inf")).triu(1)
scaling = 2.0
lora = {}
if method in ("lora", "dpo", "lora-bf16"):
    for l in range(cfg["num_hidden_layers"]):
        for t in ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]:
            parent = "self_attn" if t in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            W = w[f"model.layers.{l}.{parent}.{t}.weight"]
            lora[f"model.layers.{l}.{parent}.{t}"] = (torch.randn(r, W.shape[1]) * 0.01).requires_grad_(), torch.zeros(W.shape[0], r).requires_grad_()
    params = [p for ab in lora.values() for p in ab]
else:
    for v in w.values():
        v.requires_grad_()
    params = list(w.values())
opt = torch.optim.AdamW(params, lr=1e-5)
bf16 = method == "lora-bf16"
if bf16:
    for name in list(w):
        if w[name].dim() == 2 and "embed_tokens" not in name:
            w[name] = w[name].to(torch.bfloat16)
    # tied: the head is the embedding, cast once for the head's matmul (the lookup reads it in f32)
    head_bf16 = w["model.embed_tokens.weight"].to(torch.bfloat16) if cfg["tie_word_embeddings"] else w["lm_head.weight"]

def rms(x, g):
    return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

def rot(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)

def lin(x, key, bias=True):
    y = F.linear(x, w[key + ".weight"], w.get(key + ".bias"))
    if key in lora:
        a, b = lora[key]
        y = y + scaling * F.linear(F.linear(x, a), b)
    return y

ids = torch.randint(0, cfg["vocab_size"], (B, S + 1), generator=torch.Generator().manual_seed(0))
def seq_losses():
    """Each sequence's summed token loss (minus its log-probability), shape (B,)."""
    x = F.embedding(ids[:, :-1], w["model.embed_tokens.weight"])
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = lin(h, p + "self_attn.q_proj").view(B, S, H, D).transpose(1, 2)
        k = lin(h, p + "self_attn.k_proj").view(B, S, KV, D).transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj").view(B, S, KV, D).transpose(1, 2)
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        k = k.repeat_interleave(H // KV, 1)
        v = v.repeat_interleave(H // KV, 1)
        o = (torch.softmax(q @ k.transpose(2, 3) * D ** -0.5 + mask, -1) @ v).transpose(1, 2).reshape(B, S, H * D)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        x = x + lin(F.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, w["model.norm.weight"])
    head = head_bf16 if bf16 else w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return F.cross_entropy((x @ head.T).reshape(B * S, -1), ids[:, 1:].reshape(-1), reduction="none").view(B, S).sum(1)

if method == "dpo":
    with torch.no_grad():
        ref = seq_losses()
def step():
    opt.zero_grad()
    if method == "dpo":
        pol = seq_losses()
        h = -(pol[0] - ref[0]) + (pol[1] - ref[1])
        loss = -F.logsigmoid(0.1 * h)
    elif bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = seq_losses()[0] / T
    else:
        loss = seq_losses()[0] / T
    loss.backward()
    opt.step()
    return float(loss)

# Warm-up: oneDNN's bf16 path (autocast) keeps getting faster over its first steps (0.86 and 0.77 s,
# then 0.47-0.55 s a step, measured in turns with tuneloop), so three untimed steps come first.
for _ in range(3):
    step()
if "--serve" in sys.argv[7:]:
    # Interleaved with tuneloop's steps: one timed step per "step" line; "quit" prints the peak RSS.
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    if bf16:
        a, b = a.to(torch.bfloat16), b.to(torch.bfloat16)
    torch.mm(a, b)
    g = []
    for _ in range(3):
        t0 = time.perf_counter(); torch.mm(a, b); g.append(2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9)
    print(json.dumps({"sgemm_gflops": float(np.median(g))}), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        t0 = time.perf_counter()
        step()
        print(time.perf_counter() - t0, flush=True)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
    sys.exit(0)
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
if bf16:
    a, b = a.to(torch.bfloat16), b.to(torch.bfloat16)
torch.mm(a, b)
g = []
for _ in range(3):
    t0 = time.perf_counter(); torch.mm(a, b); g.append(2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9)
print(json.dumps({"step_s": float(np.median(times)), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "sgemm_gflops": float(np.median(g))}))
