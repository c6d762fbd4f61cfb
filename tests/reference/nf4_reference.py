#!/usr/bin/python3
"""Reference for NF4 + double quantisation as bitsandbytes does it, written out from the semantics of its
CUDA kernels (csrc/kernels.cu: kQuantizeBlockwise, dQuantizeNF4, dQuantize<0>, kDequantizeBlockwise) and
of bitsandbytes/functional.py (quantize_4bit with compress_statistics, create_dynamic_map, quantize_blockwise,
dequantize_4bit). bitsandbytes itself is not packaged for Debian, so nothing here imports it.

What the C++ must reproduce bit for bit, and why each rule is what it is:
  * blocks of 64; absmax = max |x| over the block's real elements (padding is 0 and cannot win);
  * the kernel multiplies by the reciprocal, x * (1.0f / absmax), in float32 -- not x / absmax; a block
    of zeros gives 1/0 = inf and 0 * inf = NaN, and NaN fails every `>` so it lands in code 0;
  * dQuantizeNF4 is a decision tree on float32 thresholds with strict `>`: a value equal to a threshold
    goes to the lower code;
  * two codes per byte, the first element in the high nibble; an odd tail pads the low nibble with the
    code of 0 * (1/absmax);
  * double quantisation: offset = mean of the absmax values (here: a sequential float64 sum / count,
    rounded to float32 -- torch's device reduction order is unspecified, so we pin one), absmax - offset
    quantised in blocks of 256 against create_dynamic_map(signed=True) with dQuantize's binary search
    and midpoint rule, fp32 nested absmax;
  * dequantisation: code * absmax in float32, with absmax = dynamic_map[q] * nested_absmax + offset as two
    separate float32 operations (bitsandbytes runs them as two kernels, so there is no fused multiply-add).

Writes DIR/cases.safetensors (inputs and expected outputs for hand-made edge cases and random tensors) and,
with --models, DIR/llama_f32.safetensors (expected quantisation of every linear weight of that fixture).

Usage: nf4_reference.py --out DIR [--models MODELS_DIR]
"""
import argparse
import json
import os
import struct

import numpy as np
import torch

torch.set_num_threads(1)
f32 = np.float32

# bitsandbytes get_4bit_type("nf4"): the normal-float code table (divided by its max, which is 1.0).
NF4_CODE = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
     -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
     0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
     0.7229568362236023, 1.0], dtype=f32)

def f32_literal(text):
    """A C `float` literal: the decimal rounded once, straight to float32 (nearest, ties to even), as nvcc
    does. f32(float(text)) would round twice (decimal -> double -> float) and can land one ulp away."""
    from fractions import Fraction
    exact = Fraction(text)
    d = f32(float(text))
    cands = [np.nextafter(d, f32(-2)), d, np.nextafter(d, f32(2))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(np.uint32)) & 1))
    return f32(best)


# dQuantizeNF4's decision-tree thresholds (float32 literals in the kernel).
T = {k: f32_literal(v) for k, v in {
    "root": "0.03979014977812767", "1": "0.3893125355243683", "11": "0.6427869200706482",
    "111": "0.8614784181118011", "110": "0.5016634166240692", "10": "0.2035212516784668",
    "101": "0.2920137718319893", "100": "0.1202552504837513", "0": "-0.33967943489551544",
    "01": "-0.13791173323988914", "011": "-0.045525018125772476", "010": "-0.23460740596055984",
    "00": "-0.6106329262256622", "001": "-0.4599952697753906", "000": "-0.8480964004993439"}.items()}


def nf4_code_of(x):
    """dQuantizeNF4 for an array of float32: the same tree, strict `>`, NaN falls through every test."""
    x = np.asarray(x, dtype=f32)
    gt = lambda k: x > T[k]
    hi = np.where(gt("1"),
                  np.where(gt("11"), np.where(gt("111"), 15, 14), np.where(gt("110"), 13, 12)),
                  np.where(gt("10"), np.where(gt("101"), 11, 10), np.where(gt("100"), 9, 8)))
    lo = np.where(gt("0"),
                  np.where(gt("01"), np.where(gt("011"), 7, 6), np.where(gt("010"), 5, 4)),
                  np.where(gt("00"), np.where(gt("001"), 3, 2), np.where(gt("000"), 1, 0)))
    return np.where(gt("root"), hi, lo).astype(np.uint8)


def create_dynamic_map_signed():
    """functional.create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), with torch doing the
    float32 arithmetic (linspace, means, scaling) exactly as bitsandbytes has it do."""
    data = []
    max_exponent_bits, non_sign_bits = 7, 7
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 256
    data.sort()
    return torch.tensor(data, dtype=torch.float32).numpy()


def dquantize(code, x):
    """dQuantize<0> (the kernel's binary search over a sorted 256-entry map, then the midpoint rule)."""
    out = np.empty(len(x), dtype=np.uint8)
    half = f32(0.5)
    for n, v in enumerate(np.asarray(x, dtype=f32)):
        pivot, upper_pivot, lower_pivot = 127, 255, 0
        lower, upper = f32(-1.0), f32(1.0)
        val = code[pivot]
        i = 64
        while i > 0:
            if v > val:
                lower_pivot, lower = pivot, val
                pivot += i
            else:
                upper_pivot, upper = pivot, val
                pivot -= i
            val = code[pivot]
            i >>= 1
        if upper_pivot == 255:
            upper = code[upper_pivot]
        if lower_pivot == 0:
            lower = code[lower_pivot]
        if v > val:
            out[n] = upper_pivot if v > f32(f32(upper + val) * half) else pivot
        else:
            out[n] = lower_pivot if v < f32(f32(lower + val) * half) else pivot
    return out


def blockwise_absmax(x, block):
    n = len(x)
    blocks = (n + block - 1) // block
    pad = np.zeros(blocks * block, dtype=f32)
    pad[:n] = x
    return np.abs(pad.reshape(blocks, block)).max(axis=1).astype(f32), pad


def quantize_nf4(x):
    x = np.asarray(x, dtype=f32)
    absmax, pad = blockwise_absmax(x, 64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = (f32(1.0) / absmax).astype(f32)
        scaled = (pad.reshape(-1, 64) * inv[:, None]).astype(f32).reshape(-1)
    codes = nf4_code_of(scaled)
    # Only the real elements plus, for an odd count, one padding element reach the packed bytes.
    n = len(x)
    codes = codes[: n + (n % 2)]
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    return packed, absmax


def quantize_blockwise_dynamic(a, code):
    absmax, pad = blockwise_absmax(a, 256)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = (f32(1.0) / absmax).astype(f32)
        scaled = (pad.reshape(-1, 256) * inv[:, None]).astype(f32).reshape(-1)[: len(a)]
    return dquantize(code, scaled), absmax


def double_quant(absmax, dyn):
    # torch's absmax.mean() reduces on the device in an unspecified order; we pin a sequential float64 sum.
    offset = f32(np.cumsum(absmax.astype(np.float64))[-1] / len(absmax))
    centred = (absmax - offset).astype(f32)
    q, nested = quantize_blockwise_dynamic(centred, dyn)
    return q, nested, offset


def dequantize_absmax(q, nested, offset, dyn):
    blocks = np.arange(len(q)) // 256
    scaled = (dyn[q] * nested[blocks]).astype(f32)  # kDequantizeBlockwise, General8bit
    return (scaled + offset).astype(f32)            # then `absmax += offset`, a separate op


def dequantize_nf4(packed, absmax, n):
    codes = np.empty(len(packed) * 2, dtype=np.uint8)
    codes[0::2] = packed >> 4
    codes[1::2] = packed & 15
    codes = codes[:n]
    return (NF4_CODE[codes] * absmax[np.arange(n) // 64]).astype(f32)


def full(x, dyn):
    """Everything the C++ is checked against, for both modes."""
    x = np.asarray(x, dtype=f32)
    packed, absmax = quantize_nf4(x)
    q, nested, offset = double_quant(absmax, dyn)
    dq_absmax = dequantize_absmax(q, nested, offset, dyn)
    return {
        "input": x, "packed": packed, "absmax": absmax, "dequant": dequantize_nf4(packed, absmax, len(x)),
        "dq.absmax": q, "dq.nested_absmax": nested, "dq.offset": np.array([offset], dtype=f32),
        "dq.dequant": dequantize_nf4(packed, dq_absmax, len(x)),
    }


NP_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}


def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": NP_DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
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


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[8 + n + b: 8 + n + e]
        if info["dtype"] == "F32":
            a = np.frombuffer(buf, dtype=f32)
        elif info["dtype"] == "BF16":
            a = (np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16).view(f32)
        elif info["dtype"] == "F16":
            a = np.frombuffer(buf, dtype=np.float16).astype(f32)
        else:
            continue
        out[name] = (a.reshape(info["shape"]), info["dtype"])
    return out


def edge_cases(gen):
    cases = {}
    cases["random_4096"] = torch.randn(4096, generator=gen).numpy() * f32(0.02)
    cases["odd_1001"] = torch.randn(1001, generator=gen).numpy()
    cases["zeros_130"] = np.zeros(130, dtype=f32)
    # Every threshold and code value, its float32 neighbours, and midpoints, in blocks whose absmax is
    # exactly 1 (so x * (1/absmax) == x and the comparisons see these exact values).
    pts = list(T.values()) + list(NF4_CODE)
    vals = []
    for p in pts:
        vals += [p, np.nextafter(p, f32(2)), np.nextafter(p, f32(-2))]
    for a, b in zip(NF4_CODE[:-1], NF4_CODE[1:]):
        vals.append(f32((a + b) / f32(2)))
    vals = [v for v in vals if abs(v) <= 1]
    blocks = []
    for i in range(0, len(vals), 63):
        chunk = vals[i:i + 63]
        blocks += chunk + [f32(1.0)] + [f32(0)] * (63 - len(chunk))
    cases["ties"] = np.array(blocks, dtype=f32)
    # Scales from denormal to near FLT_MAX, one per block, plus a block led by a negative maximum.
    scales = [1e-40, 1e-30, 1e-10, 1e-3, 1.0, 1e10, 1e30, 3e38]
    parts = [((torch.rand(64, generator=gen).numpy() * 2 - 1) * f32(s)).astype(f32) for s in scales]
    neg = torch.rand(64, generator=gen).numpy()
    neg[17] = -5.0
    parts.append(neg)
    cases["huge_small"] = np.concatenate(parts).astype(f32)
    # 701 blocks -> 3 nested blocks, the last one partial; absmax spread widely so the dynamic map's
    # small codes are used.
    x = torch.randn(64 * 700 + 37, generator=gen).numpy()
    x *= np.repeat(np.exp(torch.randn(701, generator=gen).numpy() * 2).astype(f32), 64)[: len(x)]
    cases["many_blocks"] = x.astype(f32)
    # Every block has the same absmax: absmax - offset is all zero, so the nested absmax is 0 (1/0 = inf
    # and the NaN path of dQuantize).
    same = torch.randn(64 * 300, generator=gen).numpy() * f32(0.1)
    same = np.clip(same, -0.5, 0.5)
    same[::64] = 0.75
    cases["equal_absmax"] = same.astype(f32)
    cases["single"] = np.array([0.3], dtype=f32)
    return cases


def linear_weight_names(names):
    # The linear projections of the decoder layers (rank-2 weights under model.layers.*); embeddings,
    # lm_head and norms stay unquantised, as transformers' bnb integration leaves them.
    return sorted(n for n in names if n.startswith("model.layers.") and n.endswith("_proj.weight"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    dyn = create_dynamic_map_signed()

    tensors = {"nf4_code": NF4_CODE, "dynamic_map": dyn}
    cases = edge_cases(gen)
    for name, x in cases.items():
        for k, v in full(x, dyn).items():
            tensors[f"{name}.{k}"] = v
    write_safetensors(os.path.join(args.out, "cases.safetensors"), tensors, {"cases": ",".join(sorted(cases))})

    if args.models:
        src = os.path.join(args.models, "llama_f32", "model.safetensors")
        weights = read_safetensors(src)
        expected = {}
        for name in linear_weight_names(weights):
            w, dtype = weights[name]
            r = full(w.reshape(-1), dyn)
            expected[name] = r["packed"].reshape(-1, 1)
            expected[name + ".absmax"] = r["dq.absmax"]
            expected[name + ".nested_absmax"] = r["dq.nested_absmax"]
            expected[name + ".dequant"] = r["dq.dequant"].reshape(w.shape)
            expected[name + ".plain_absmax"] = r["absmax"]
            expected[name + ".plain_dequant"] = r["dequant"].reshape(w.shape)
            state = {"quant_type": "nf4", "blocksize": 64, "dtype": {"F32": "float32", "BF16": "bfloat16",
                     "F16": "float16"}[dtype], "shape": list(w.shape), "nested_blocksize": 256,
                     "nested_dtype": "float32", "nested_offset": float(r["dq.offset"][0])}
            # QuantState.as_dict(packed=True) -> pack_dict_to_tensor: json.dumps, utf-8, one byte per uint8.
            expected[name + ".quant_state.bitsandbytes__nf4"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
        write_safetensors(os.path.join(args.out, "llama_f32.safetensors"), expected)
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
