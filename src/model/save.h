// Writes model weights in Hugging Face layout (`model.safetensors`, f32, HF tensor names; the fused
// q/k/v and gate/up matrices split back), for full fine-tuning outputs and merged adapters.
#pragma once

#include <string>

#include "core/status.h"
#include "model/config.h"
#include "model/model.h"

namespace tl {

Status save_hf_weights(const std::string& path, const ModelWeights& weights, const ModelConfig& config);

// Copies config.json, generation_config.json and tokenizer files from `src_dir` to `dst_dir` (those
// that exist), atomically each.
Status copy_model_metadata(const std::string& src_dir, const std::string& dst_dir);

}  // namespace tl
