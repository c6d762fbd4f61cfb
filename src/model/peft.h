// PEFT adapters on disk: `adapter_model.safetensors` with PEFT's key names
// (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, …) and `adapter_config.json`
// with PEFT's LoraConfig fields, so `PeftModel.from_pretrained` (and vLLM, llama.cpp's converter) load
// what we write, and we load what they write.
//
// (ARCHITECTURE.md puts PEFT I/O in src/io; it lives beside LoraWeights in src/model because io sits left
// of model and cannot know the adapter's structure. io/safetensors does the bytes.)
#pragma once

#include <string>

#include "core/status.h"
#include "model/config.h"
#include "model/lora.h"

namespace tl::peft {

// The safetensors key of one A or B matrix.
std::string tensor_name(int64_t layer, LoraTarget target, bool is_a);

// Writes both files atomically into `dir` (created if missing).
Status save(const std::string& dir, const LoraWeights& weights, const LoraConfig& config,
            const std::string& base_model_name_or_path);

struct Adapter {
  LoraWeights weights;
  LoraConfig config;
};

// Reads a PEFT LoRA adapter for a model of `model` shape. Errors name the file and the key: unsupported
// PEFT options (DoRA, rank/alpha patterns, regex target_modules), missing tensors, wrong shapes.
Result<Adapter> load(const std::string& dir, const ModelConfig& model);

}  // namespace tl::peft
