#include "model/lora.h"

#include <cmath>
#include <random>

namespace tl {

namespace {
const char* kNames[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
}

const char* lora_target_name(LoraTarget t) { return kNames[static_cast<int>(t)]; }
const char* lora_target_parent(LoraTarget t) { return static_cast<int>(t) <= 3 ? "self_attn" : "mlp"; }

Result<LoraTarget> lora_target_from_name(const std::string& name) {
  for (int i = 0; i < kLoraTargetCount; ++i)
    if (name == kNames[i]) return static_cast<LoraTarget>(i);
  return invalid_argument(
      "unknown LoRA target module '{}' (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj)",
      name);
}

std::pair<int64_t, int64_t> lora_target_shape(const ModelConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::kQ: return {c.q_dim(), c.hidden_size};
    case LoraTarget::kK:
    case LoraTarget::kV: return {c.kv_dim(), c.hidden_size};
    case LoraTarget::kO: return {c.hidden_size, c.q_dim()};
    case LoraTarget::kGate:
    case LoraTarget::kUp: return {c.intermediate_size, c.hidden_size};
    case LoraTarget::kDown: return {c.hidden_size, c.intermediate_size};
  }
  return {0, 0};
}

double LoraConfig::scaling() const { return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r); }

LoraWeights LoraWeights::zeros_like() const {
  LoraWeights z;
  z.layers.resize(layers.size());
  for (size_t l = 0; l < layers.size(); ++l)
    for (size_t t = 0; t < kLoraTargetCount; ++t) {
      const LoraModule& m = layers[l][t];
      if (m.a.empty()) continue;
      z.layers[l][t].a = Tensor::zeros(DType::kF32, m.a.shape());
      z.layers[l][t].b = Tensor::zeros(DType::kF32, m.b.shape());
    }
  return z;
}

int64_t LoraWeights::parameter_count() const {
  int64_t n = 0;
  for (const auto& layer : layers)
    for (const auto& m : layer)
      if (!m.a.empty()) n += m.a.numel() + m.b.numel();
  return n;
}

Result<LoraWeights> lora_init(const ModelConfig& model, const LoraConfig& lora, uint64_t seed) {
  if (lora.targets.empty()) return invalid_argument("lora.target_modules: at least one target module is required");
  if (lora.r < 1) return invalid_argument("lora.r: must be >= 1, got {}", lora.r);
  if (!(lora.alpha > 0)) return invalid_argument("lora.alpha: must be positive, got {}", lora.alpha);
  if (!(lora.dropout >= 0 && lora.dropout < 1)) return invalid_argument("lora.dropout: must be in [0, 1), got {}", lora.dropout);
  for (LoraTarget t : lora.targets) {
    auto [out, in] = lora_target_shape(model, t);
    if (lora.r > std::min(out, in)) {
      return invalid_argument("lora.r: rank {} is larger than {} ({} x {})", lora.r, lora_target_name(t), out, in);
    }
  }
  std::mt19937_64 rng(seed);
  LoraWeights w;
  w.layers.resize(static_cast<size_t>(model.num_layers));
  for (int64_t l = 0; l < model.num_layers; ++l) {
    for (LoraTarget t : lora.targets) {
      auto [out, in] = lora_target_shape(model, t);
      LoraModule& m = w.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      m.a = Tensor::zeros(DType::kF32, {lora.r, in});
      m.b = Tensor::zeros(DType::kF32, {out, lora.r});
      // kaiming_uniform_(a=sqrt(5)): gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1/sqrt(fan_in)
      const float bound = 1.0f / std::sqrt(static_cast<float>(in));
      std::uniform_real_distribution<float> u(-bound, bound);
      float* a = m.a.f32();
      for (int64_t i = 0; i < m.a.numel(); ++i) a[i] = u(rng);
    }
  }
  return w;
}

}  // namespace tl
