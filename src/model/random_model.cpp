#include "model/random_model.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "core/file.h"
#include "io/safetensors.h"

namespace tl {

std::string config_to_json(const ModelConfig& c) {
  static const char* arch_names[][2] = {{"llama", "LlamaForCausalLM"},
                                        {"mistral", "MistralForCausalLM"},
                                        {"qwen2", "Qwen2ForCausalLM"},
                                        {"qwen3", "Qwen3ForCausalLM"}};
  std::string arch = "LlamaForCausalLM";
  for (const auto& a : arch_names)
    if (c.model_type == a[0]) arch = a[1];
  nlohmann::ordered_json j = {
      {"architectures", {arch}},
      {"model_type", c.model_type},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", "float32"},
  };
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (!c.eos_token_ids.empty()) {
    if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
    else j["eos_token_id"] = c.eos_token_ids;
  }
  if (c.model_type == "llama" && (c.qkv_bias || c.o_bias)) j["attention_bias"] = true;
  if (c.model_type == "mistral" && c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  return j.dump(2) + "\n";
}

Status write_random_model(const std::string& dir, const ModelConfig& c, uint64_t seed, float embed_std) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error("{}: cannot create directory: {}", dir, ec.message());
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, Tensor>> owned;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float std_dev, float constant) {
    Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
    float* p = t.f32();
    std::normal_distribution<float> nd(0.0f, std_dev > 0 ? std_dev : 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = std_dev > 0 ? nd(rng) : constant;
    owned.emplace_back(name, std::move(t));
  };
  const int64_t C = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  add("model.embed_tokens.weight", {c.vocab_size, C}, embed_std, 0);
  add("model.norm.weight", {C}, 0, 1.0f);
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, C}, 0.02f, 0);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {C}, 0, 1.0f);
    add(p + "post_attention_layernorm.weight", {C}, 0, 1.0f);
    add(p + "self_attn.q_proj.weight", {c.q_dim(), C}, 0.02f, 0);
    add(p + "self_attn.k_proj.weight", {c.kv_dim(), C}, 0.02f, 0);
    add(p + "self_attn.v_proj.weight", {c.kv_dim(), C}, 0.02f, 0);
    add(p + "self_attn.o_proj.weight", {C, c.q_dim()}, 0.02f, 0);
    if (c.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {c.q_dim()}, 0, 0.0f);
      add(p + "self_attn.k_proj.bias", {c.kv_dim()}, 0, 0.0f);
      add(p + "self_attn.v_proj.bias", {c.kv_dim()}, 0, 0.0f);
    }
    if (c.qk_norm) {
      add(p + "self_attn.q_norm.weight", {D}, 0, 1.0f);
      add(p + "self_attn.k_norm.weight", {D}, 0, 1.0f);
    }
    add(p + "mlp.gate_proj.weight", {I, C}, 0.02f, 0);
    add(p + "mlp.up_proj.weight", {I, C}, 0.02f, 0);
    add(p + "mlp.down_proj.weight", {C, I}, 0.02f, 0);
  }
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [n, t] : owned) refs.emplace_back(n, &t);
  TL_TRY(safetensors::write(dir + "/model.safetensors", refs, {{"format", "pt"}}));
  return write_file_atomic(dir + "/config.json", config_to_json(c));
}

}  // namespace tl
