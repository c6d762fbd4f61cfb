#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "io/json_text.h"

namespace tl {

namespace {

using json = nlohmann::json;

Result<int64_t> get_int(const json& j, const char* key, const std::string& origin, bool required, int64_t fallback,
                        int64_t min_value = 1) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return invalid_argument("{}: missing required field '{}'", origin, key);
    return fallback;
  }
  if (!it->is_number_integer()) return invalid_argument("{}: field '{}' must be an integer, got {}", origin, key, it->dump());
  int64_t v = it->get<int64_t>();
  if (v < min_value) return invalid_argument("{}: field '{}' must be >= {}, got {}", origin, key, min_value, v);
  return v;
}

Result<double> get_num(const json& j, const char* key, const std::string& origin, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) return invalid_argument("{}: field '{}' must be a number, got {}", origin, key, it->dump());
  return it->get<double>();
}

Result<bool> get_bool(const json& j, const char* key, const std::string& origin, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return invalid_argument("{}: field '{}' must be true or false, got {}", origin, key, it->dump());
  return it->get<bool>();
}

Status read_eos(const json& j, const std::string& origin, std::vector<int32_t>* out) {
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return Status::ok();
  out->clear();
  if (it->is_number_integer()) {
    out->push_back(it->get<int32_t>());
  } else if (it->is_array()) {
    for (const auto& e : *it) {
      if (!e.is_number_integer()) return invalid_argument("{}: eos_token_id must hold integers", origin);
      out->push_back(e.get<int32_t>());
    }
  } else {
    return invalid_argument("{}: eos_token_id must be an integer or a list of integers", origin);
  }
  return Status::ok();
}

}  // namespace

Result<ModelConfig> ModelConfig::from_json_text(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument("{}: invalid JSON ({})", origin, json_syntax_error(text));
  if (!j.is_object()) return invalid_argument("{}: not a JSON object", origin);
  ModelConfig c;
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) return invalid_argument("{}: missing string field 'model_type'", origin);
  c.model_type = mt->get<std::string>();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2" && c.model_type != "qwen3") {
    return unimplemented("{}: model_type '{}' is not supported (expected llama, mistral, qwen2 or qwen3)", origin,
                         c.model_type);
  }
  if (auto act = j.find("hidden_act"); act != j.end() && act->is_string() && act->get<std::string>() != "silu") {
    return unimplemented("{}: hidden_act '{}' is not supported (expected silu)", origin, act->get<std::string>());
  }
  TL_ASSIGN_OR_RETURN(c.vocab_size, get_int(j, "vocab_size", origin, true, 0));
  TL_ASSIGN_OR_RETURN(c.hidden_size, get_int(j, "hidden_size", origin, true, 0));
  TL_ASSIGN_OR_RETURN(c.intermediate_size, get_int(j, "intermediate_size", origin, true, 0));
  TL_ASSIGN_OR_RETURN(c.num_layers, get_int(j, "num_hidden_layers", origin, true, 0));
  TL_ASSIGN_OR_RETURN(c.num_heads, get_int(j, "num_attention_heads", origin, true, 0));
  TL_ASSIGN_OR_RETURN(c.num_kv_heads, get_int(j, "num_key_value_heads", origin, false, c.num_heads));
  if (c.num_heads % c.num_kv_heads != 0) {
    return invalid_argument("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", origin,
                            c.num_heads, c.num_kv_heads);
  }
  int64_t default_head_dim = c.hidden_size / c.num_heads;
  TL_ASSIGN_OR_RETURN(c.head_dim, get_int(j, "head_dim", origin, false, default_head_dim));
  if (c.head_dim % 2 != 0) return invalid_argument("{}: head_dim must be even for RoPE, got {}", origin, c.head_dim);
  TL_ASSIGN_OR_RETURN(c.max_position_embeddings, get_int(j, "max_position_embeddings", origin, false, 4096));
  TL_ASSIGN_OR_RETURN(c.rms_norm_eps, get_num(j, "rms_norm_eps", origin, 1e-6));
  TL_ASSIGN_OR_RETURN(c.rope_theta, get_num(j, "rope_theta", origin, 10000.0));
  if (!(c.rope_theta > 0)) return invalid_argument("{}: rope_theta must be positive", origin);
  TL_ASSIGN_OR_RETURN(c.tie_word_embeddings, get_bool(j, "tie_word_embeddings", origin, false));

  if (c.model_type == "qwen2") {
    c.qkv_bias = true;
  } else {
    TL_ASSIGN_OR_RETURN(bool attention_bias, get_bool(j, "attention_bias", origin, false));
    c.qkv_bias = attention_bias;
    c.o_bias = attention_bias && c.model_type == "llama";
  }
  if (c.model_type == "llama") {
    TL_ASSIGN_OR_RETURN(c.mlp_bias, get_bool(j, "mlp_bias", origin, false));
  }
  c.qk_norm = c.model_type == "qwen3";

  if (c.model_type == "mistral") {
    TL_ASSIGN_OR_RETURN(c.sliding_window, get_int(j, "sliding_window", origin, false, 0));
  } else if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    TL_ASSIGN_OR_RETURN(bool use_sw, get_bool(j, "use_sliding_window", origin, false));
    if (use_sw) return unimplemented("{}: use_sliding_window=true is not supported for {}", origin, c.model_type);
  }

  if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null()) {
    if (!rs->is_object()) return invalid_argument("{}: rope_scaling must be an object or null", origin);
    std::string type;
    if (auto t = rs->find("rope_type"); t != rs->end() && t->is_string()) type = t->get<std::string>();
    else if (auto t2 = rs->find("type"); t2 != rs->end() && t2->is_string()) type = t2->get<std::string>();
    else return invalid_argument("{}: rope_scaling needs a 'rope_type' (or 'type') string", origin);
    const std::string ctx = origin + ": rope_scaling";
    if (type == "default") {
      c.rope_scaling.type = RopeScalingType::kNone;
    } else if (type == "linear" || type == "llama3") {
      c.rope_scaling.type = type == "linear" ? RopeScalingType::kLinear : RopeScalingType::kLlama3;
      TL_ASSIGN_OR_RETURN(c.rope_scaling.factor, get_num(*rs, "factor", ctx, 0.0));
      if (!(c.rope_scaling.factor > 0)) return invalid_argument("{}: rope_scaling.factor must be positive", origin);
      if (type == "llama3") {
        TL_ASSIGN_OR_RETURN(c.rope_scaling.low_freq_factor, get_num(*rs, "low_freq_factor", ctx, 1.0));
        TL_ASSIGN_OR_RETURN(c.rope_scaling.high_freq_factor, get_num(*rs, "high_freq_factor", ctx, 4.0));
        TL_ASSIGN_OR_RETURN(c.rope_scaling.original_max_position_embeddings,
                            get_int(*rs, "original_max_position_embeddings", ctx, false, 8192));
        if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor)) {
          return invalid_argument("{}: rope_scaling.high_freq_factor must exceed low_freq_factor", origin);
        }
      }
    } else {
      return unimplemented("{}: rope_scaling type '{}' is not supported (expected linear or llama3)", origin, type);
    }
  }
  if (auto d = j.find("torch_dtype"); d != j.end() && d->is_string()) c.torch_dtype = d->get<std::string>();
  TL_TRY(read_eos(j, origin, &c.eos_token_ids));
  if (auto b = j.find("bos_token_id"); b != j.end() && b->is_number_integer()) c.bos_token_id = b->get<int32_t>();
  return c;
}

Result<ModelConfig> ModelConfig::load(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  TL_ASSIGN_OR_RETURN(ModelConfig c, from_json_text(text, path));
  // generation_config.json's eos_token_id is what generate() stops on in transformers.
  const std::string gen_path = model_dir + "/generation_config.json";
  if (file_exists(gen_path)) {
    TL_ASSIGN_OR_RETURN(std::string gen_text, read_file(gen_path));
    json g = json::parse(gen_text, nullptr, false);
    if (g.is_discarded()) return invalid_argument("{}: invalid JSON ({})", gen_path, json_syntax_error(gen_text));
    if (!g.is_object()) return invalid_argument("{}: not a JSON object", gen_path);
    TL_TRY(read_eos(g, gen_path, &c.eos_token_ids));
  }
  return c;
}

int64_t ModelConfig::parameter_count() const {
  const int64_t c = hidden_size, d = head_dim, i = intermediate_size;
  int64_t per_layer = 2 * c;                                 // two norms
  per_layer += c * q_dim() + 2 * c * kv_dim() + q_dim() * c;  // q, k, v, o
  if (qkv_bias) per_layer += q_dim() + 2 * kv_dim();
  if (o_bias) per_layer += c;
  if (qk_norm) per_layer += 2 * d;
  per_layer += 3 * c * i;
  if (mlp_bias) per_layer += 2 * i + c;
  int64_t total = per_layer * num_layers + vocab_size * c + c;
  if (!tie_word_embeddings) total += vocab_size * c;
  return total;
}

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  const int64_t half = config.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const float base = static_cast<float>(config.rope_theta);
  for (int64_t i = 0; i < half; ++i) {
    float e = static_cast<float>(2 * i) / static_cast<float>(config.head_dim);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(base, e);
  }
  const RopeScaling& s = config.rope_scaling;
  if (s.type == RopeScalingType::kLinear) {
    for (float& f : inv) f = f / static_cast<float>(s.factor);
  } else if (s.type == RopeScalingType::kLlama3) {
    const float factor = static_cast<float>(s.factor);
    const float old_len = static_cast<float>(s.original_max_position_embeddings);
    const float low_wavelen = old_len / static_cast<float>(s.low_freq_factor);
    const float high_wavelen = old_len / static_cast<float>(s.high_freq_factor);
    for (float& f : inv) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      float scaled = wavelen > low_wavelen ? f / factor : f;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      if (medium) {
        float smooth = (old_len / wavelen - static_cast<float>(s.low_freq_factor)) /
                       static_cast<float>(s.high_freq_factor - s.low_freq_factor);
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
  return inv;
}

}  // namespace tl
