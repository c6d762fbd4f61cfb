// Writes a model with random weights in real Hugging Face layout (config.json + model.safetensors), for
// the demo, benchmarks and tests that need a model of a given shape and have none on disk.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "model/config.h"

namespace tl {

// Weights ~ N(0, 0.02) (embeddings N(0, 1) scaled by `embed_std`), norms 1, biases 0 — the usual
// initialisation of transformers. Writes atomically into `dir` (created if missing).
Status write_random_model(const std::string& dir, const ModelConfig& config, uint64_t seed, float embed_std = 0.02f);

// The config.json text for `config` (the fields ModelConfig reads).
std::string config_to_json(const ModelConfig& config);

}  // namespace tl
