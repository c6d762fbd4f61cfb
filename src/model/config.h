// ModelConfig: the architecture of a Llama-family checkpoint, read from Hugging Face's config.json.
//
// Supported `model_type`s: llama, mistral, qwen2 (q/k/v bias), qwen3 (explicit head_dim, per-head
// q_norm/k_norm before RoPE). Options: grouped-query attention, tie_word_embeddings, rope_theta,
// rope_scaling of type linear and llama3, sliding_window (mistral), attention_bias/mlp_bias (llama).
// Anything else that changes the math is refused with an error that names the field, never ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tl {

enum class RopeScalingType { kNone, kLinear, kLlama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                // llama3
  double high_freq_factor = 4.0;               // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string model_type;  // "llama", "mistral", "qwen2", "qwen3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // qwen2; llama with attention_bias
  bool o_bias = false;    // llama with attention_bias
  bool mlp_bias = false;  // llama with mlp_bias
  bool qk_norm = false;   // qwen3
  int64_t sliding_window = 0;  // 0: full causal attention
  std::string torch_dtype;     // as declared ("bfloat16", "float32", ...), informational
  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;

  static Result<ModelConfig> from_json_text(const std::string& text, const std::string& origin);
  static Result<ModelConfig> load(const std::string& model_dir);  // config.json (+ generation_config.json eos)

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters of the weights this config implies (embedding counted once when tied).
  int64_t parameter_count() const;
};

// RoPE inverse frequencies (head_dim / 2 values), computed in f32 exactly as transformers does,
// including linear and llama3 scaling.
std::vector<float> rope_inv_freq(const ModelConfig& config);

}  // namespace tl
