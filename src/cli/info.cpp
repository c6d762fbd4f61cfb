// `tuneloop info MODEL_DIR [--json]`: what a model directory holds — architecture, parameter count,
// dtypes, attention layout, RoPE, and which tokenizer / chat-template files are present.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace tl::cli {

namespace {
const char* rope_name(RopeScalingType t) {
  switch (t) {
    case RopeScalingType::kNone: return "none";
    case RopeScalingType::kLinear: return "linear";
    case RopeScalingType::kLlama3: return "llama3";
  }
  return "?";
}
}  // namespace

Status cmd_info(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {}, {"--json"}));
  if (args.positionals().size() != 1) return invalid_argument("info: expected one MODEL_DIR");
  const std::string dir = args.positionals()[0];
  if (!is_directory(dir)) return not_found("{}: not a model directory", dir);
  TL_ASSIGN_OR_RETURN(ModelConfig c, ModelConfig::load(dir));
  TL_ASSIGN_OR_RETURN(safetensors::ShardedFiles files, safetensors::ShardedFiles::open(dir));
  int64_t stored = 0;
  std::map<std::string, int64_t> by_dtype;
  for (const auto& name : files.names()) {
    auto t = files.tensor(name);
    if (!t.is_ok()) continue;  // non-float tensors are not weights we use
    stored += t->numel();
    by_dtype[dtype_name(t->dtype())] += t->numel();
  }
  const bool has_tokenizer = file_exists(dir + "/tokenizer.json");
  bool has_template = false;
  if (file_exists(dir + "/tokenizer_config.json")) {
    auto text = read_file(dir + "/tokenizer_config.json");
    if (text.is_ok()) {
      auto j = nlohmann::json::parse(*text, nullptr, false);
      has_template = j.is_object() && j.contains("chat_template");
    }
  }
  nlohmann::ordered_json out = {
      {"model_type", c.model_type},
      {"parameters", c.parameter_count()},
      {"stored_parameters", stored},
      {"dtypes", by_dtype},
      {"shards", files.shard_count()},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_layers", c.num_layers},
      {"num_heads", c.num_heads},
      {"num_kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", rope_name(c.rope_scaling.type)},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"qkv_bias", c.qkv_bias},
      {"qk_norm", c.qk_norm},
      {"sliding_window", c.sliding_window},
      {"eos_token_ids", c.eos_token_ids},
      {"tokenizer", has_tokenizer},
      {"chat_template", has_template},
  };
  if (args.has("--json")) {
    std::printf("%s\n", out.dump(2).c_str());
    return Status::ok();
  }
  std::string dtypes;
  for (const auto& [d, n] : by_dtype) dtypes += (dtypes.empty() ? "" : ", ") + d + " " + std::to_string(n);
  std::printf("model:        %s (%s)\n", dir.c_str(), c.model_type.c_str());
  std::printf("parameters:   %.2fM (%lld stored: %s; %zu shard%s)\n", static_cast<double>(c.parameter_count()) / 1e6,
              static_cast<long long>(stored), dtypes.c_str(), files.shard_count(), files.shard_count() == 1 ? "" : "s");
  std::printf("layers:       %lld x (hidden %lld, intermediate %lld)\n", static_cast<long long>(c.num_layers),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.intermediate_size));
  std::printf("attention:    %lld heads, %lld kv heads, head_dim %lld%s%s%s\n", static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.head_dim),
              c.qkv_bias ? ", qkv bias" : "", c.qk_norm ? ", q/k norm" : "",
              c.sliding_window ? (", sliding window " + std::to_string(c.sliding_window)).c_str() : "");
  std::printf("rope:         theta %g, scaling %s\n", c.rope_theta, rope_name(c.rope_scaling.type));
  std::printf("vocab:        %lld%s\n", static_cast<long long>(c.vocab_size),
              c.tie_word_embeddings ? " (tied embeddings)" : "");
  std::printf("tokenizer:    %s; chat template: %s\n", has_tokenizer ? "tokenizer.json" : "none",
              has_template ? "yes" : "no");
  return Status::ok();
}

}  // namespace tl::cli
