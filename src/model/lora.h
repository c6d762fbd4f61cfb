// LoRA adapters: low-rank updates on any of the seven projections of every layer, as PEFT defines them.
//
//   y = x W^T + scaling * (dropout(x) A^T) B^T,   A (r, in), B (out, r),
//   scaling = alpha / r  (alpha / sqrt(r) with rsLoRA)
// Initialisation as PEFT: A Kaiming-uniform with a = sqrt(5) (uniform in ±1/sqrt(in)), B zero, so a fresh
// adapter leaves the model unchanged. Gradients use the same struct type (LoraWeights) as parameters.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "tensor/tensor.h"

namespace tl {

enum class LoraTarget : int { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
constexpr int kLoraTargetCount = 7;
const char* lora_target_name(LoraTarget t);           // "q_proj", ...
const char* lora_target_parent(LoraTarget t);         // "self_attn" or "mlp"
Result<LoraTarget> lora_target_from_name(const std::string& name);
// (out, in) of a target's base projection.
std::pair<int64_t, int64_t> lora_target_shape(const ModelConfig& c, LoraTarget t);

struct LoraConfig {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0.0;
  bool rslora = false;
  std::vector<LoraTarget> targets;  // which projections carry an adapter
  double scaling() const;
};

// One target module of one layer: A (r, in), B (out, r). Empty tensors where the target is not adapted.
struct LoraModule {
  Tensor a;
  Tensor b;
};

// All adapted modules: layers[l][target].
struct LoraWeights {
  std::vector<std::array<LoraModule, kLoraTargetCount>> layers;
  // Zero tensors of the same shapes (for gradients and optimizer moments).
  LoraWeights zeros_like() const;
  // Visits every (name suffix, tensor) pair in a fixed order: "layers.{l}.{parent}.{target}.lora_{A|B}".
  template <typename F>
  void for_each(F&& f) {
    for (size_t l = 0; l < layers.size(); ++l)
      for (int t = 0; t < kLoraTargetCount; ++t) {
        LoraModule& m = layers[l][static_cast<size_t>(t)];
        if (m.a.empty()) continue;
        f(static_cast<int64_t>(l), static_cast<LoraTarget>(t), m);
      }
  }
  int64_t parameter_count() const;
};

// A fresh adapter for `config` (A random with `seed`, B zero). Errors: rank < 1 or larger than a target
// layer's smaller dimension, no targets.
Result<LoraWeights> lora_init(const ModelConfig& model, const LoraConfig& lora, uint64_t seed);

}  // namespace tl
