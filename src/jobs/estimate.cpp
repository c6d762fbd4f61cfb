// The preflight arithmetic (formulas in estimate.h).
#include "jobs/estimate.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/file.h"

namespace tl::jobs {

Result<ModelShape> read_model_shape(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  auto cfg = nlohmann::json::parse(text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) return invalid_argument("{}: not a JSON object", path);
  if (cfg.contains("text_config") && cfg["text_config"].is_object()) cfg = cfg["text_config"];
  auto need = [&](const char* key) -> Result<int64_t> {
    if (!cfg.contains(key) || !cfg[key].is_number_integer() || cfg[key].get<int64_t>() <= 0)
      return invalid_argument("{}: missing or non-positive integer '{}'", path, key);
    return cfg[key].get<int64_t>();
  };
  TL_ASSIGN_OR_RETURN(int64_t h, need("hidden_size"));
  TL_ASSIGN_OR_RETURN(int64_t inter, need("intermediate_size"));
  TL_ASSIGN_OR_RETURN(int64_t layers, need("num_hidden_layers"));
  TL_ASSIGN_OR_RETURN(int64_t vocab, need("vocab_size"));
  TL_ASSIGN_OR_RETURN(int64_t heads, need("num_attention_heads"));
  int64_t kv = cfg.value("num_key_value_heads", heads);
  int64_t head_dim = cfg.contains("head_dim") && cfg["head_dim"].is_number_integer() ? cfg["head_dim"].get<int64_t>() : h / heads;
  bool tied = cfg.value("tie_word_embeddings", false);
  int64_t attn = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h;
  int64_t mlp = 3 * h * inter;
  int64_t per_layer = attn + mlp + 2 * h;
  ModelShape m;
  m.parameters = vocab * h * (tied ? 1 : 2) + layers * per_layer + h;
  m.hidden_size = h;
  m.layers = layers;
  return m;
}

double flops_per_token(const ModelShape& m, const JobSpec& spec) {
  const double n = static_cast<double>(m.parameters);
  double k = trains_all_weights(spec) ? 6.0 : 4.0;
  if (spec.training.gradient_checkpointing) k += 2.0;
  if (nf4_base(spec)) k *= 1.25;
  // dpo: the reference's forward over the pairs runs once, before the first epoch.
  if (spec.method == "dpo") k += 2.0 / static_cast<double>(std::max<int64_t>(1, spec.training.epochs));
  return k * n;
}

int64_t memory_mb_needed(const ModelShape& m, const JobSpec& spec) {
  const double n = static_cast<double>(m.parameters);
  double bytes = 0;
  if (trains_all_weights(spec)) bytes = n * 16;        // fp32 weights + grads + two AdamW moments
  else if (nf4_base(spec)) bytes = n * 0.55;           // nf4 + double-quant constants
  else bytes = n * 2;                                   // bf16 frozen weights
  // dpo: the reference is the base as loaded, scored once before training: no copy of it is held.
  // LoRA params + their grads + AdamW state: r × (in + out) per targeted matrix, ~7 matrices per layer.
  if (!trains_all_weights(spec)) bytes += 16.0 * static_cast<double>(spec.lora.r) * 2 * static_cast<double>(m.hidden_size) * 7 * static_cast<double>(m.layers);
  // Activations for one micro-batch: ~34 bytes per hidden unit per token per layer (bf16), or 2 layers'
  // worth plus the checkpoints when recomputing.
  double tokens = static_cast<double>(spec.training.micro_batch_size * spec.training.max_seq_len);
  double per_layer = 34.0 * tokens * static_cast<double>(m.hidden_size);
  double layers_kept = spec.training.gradient_checkpointing ? 2.0 + static_cast<double>(m.layers) * 2.0 / 34.0 : static_cast<double>(m.layers);
  bytes += per_layer * layers_kept * (spec.method == "dpo" ? 2 : 1);
  bytes *= 1.1;  // allocator slack and workspace
  return static_cast<int64_t>(bytes / (1 << 20)) + 256;
}

Result<Estimate> estimate_job(const ModelShape& m, const JobSpec& spec, int64_t train_tokens, int64_t validation_tokens,
                              const DevicePool& pool) {
  Estimate e;
  e.memory_mb = memory_mb_needed(m, spec);
  e.tokens = train_tokens * spec.training.epochs;
  const double fpt = flops_per_token(m, spec);
  // Validation is forward-only: 2N per token, once per epoch.
  e.flops = fpt * static_cast<double>(e.tokens) + 2.0 * static_cast<double>(m.parameters) *
                                                      static_cast<double>(validation_tokens * spec.training.epochs);
  const Device* best = nullptr;
  double best_tput = 0;
  int64_t largest = 0;
  for (const Device& d : pool.devices) {
    largest = std::max(largest, d.memory_mb);
    if (d.memory_mb < e.memory_mb) continue;
    TL_ASSIGN_OR_RETURN(double t, pool.throughput(d));
    if (t > best_tput) best = &d, best_tput = t;
  }
  if (!best)
    return resource_exhausted("the job needs an estimated {} MiB of device memory ({} on {} parameters); the largest device "
                              "in the pool has {} MiB",
                              e.memory_mb, spec.method, m.parameters, largest);
  e.device_kind = best->kind;
  e.device_hours = e.flops / best_tput / 3600.0;
  e.cost = e.device_hours * best->price_per_hour;
  return e;
}

}  // namespace tl::jobs
