#!/usr/bin/python3
"""Loads a PEFT LoRA adapter as PEFT defines it (adapter_config.json: r, lora_alpha, use_rslora,
target_modules; adapter_model.safetensors: base_model.model.<module>.lora_A/B.weight) onto a base model
and prints the mean token loss of the examples in CASE.json ({"examples": [{"tokens", "targets"}]}), with
the PyTorch forward of train_reference.py. Used by the C++ tests to check that what tuneloop writes means
the same thing to the reference.

Usage: peft_loss_reference.py MODEL_DIR ADAPTER_DIR CASE.json
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_reference import forward_loss, load_weights  # noqa: E402


def main():
    model_dir, adapter_dir, case_path = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    acfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    assert acfg["peft_type"] == "LORA"
    r, alpha = acfg["r"], acfg["lora_alpha"]
    scaling = alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r
    tensors = load_weights(os.path.join(adapter_dir, "adapter_model.safetensors"))
    lora = {}
    prefix = "base_model.model."
    for name in tensors:
        if name.endswith(".lora_A.weight"):
            module = name[len(prefix):-len(".lora_A.weight")]
            assert module.split(".")[-1] in acfg["target_modules"], module
            lora[module] = (tensors[name], tensors[prefix + module + ".lora_B.weight"])
    w = load_weights(os.path.join(model_dir, "model.safetensors"))
    case = json.load(open(case_path))
    total, n = 0.0, 0
    with torch.no_grad():
        for ex in case["examples"]:
            loss, k = forward_loss(cfg, w, lora, scaling, ex["tokens"], ex["targets"])
            total += float(loss)
            n += k
    print(json.dumps({"loss": total / n, "tokens": n, "modules": len(lora)}))


if __name__ == "__main__":
    main()
