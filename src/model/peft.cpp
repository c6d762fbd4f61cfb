#include "model/peft.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "io/json_text.h"
#include "io/safetensors.h"

namespace tl::peft {

std::string tensor_name(int64_t layer, LoraTarget target, bool is_a) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + lora_target_parent(target) + "." +
         lora_target_name(target) + (is_a ? ".lora_A.weight" : ".lora_B.weight");
}

Status save(const std::string& dir, const LoraWeights& weights, const LoraConfig& config,
            const std::string& base_model_name_or_path) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error("{}: cannot create directory: {}", dir, ec.message());
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (size_t l = 0; l < weights.layers.size(); ++l)
    for (int t = 0; t < kLoraTargetCount; ++t) {
      const LoraModule& m = weights.layers[l][static_cast<size_t>(t)];
      if (m.a.empty()) continue;
      tensors.emplace_back(tensor_name(static_cast<int64_t>(l), static_cast<LoraTarget>(t), true), &m.a);
      tensors.emplace_back(tensor_name(static_cast<int64_t>(l), static_cast<LoraTarget>(t), false), &m.b);
    }
  std::sort(tensors.begin(), tensors.end());
  TL_TRY(safetensors::write(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}}));
  nlohmann::ordered_json targets = nlohmann::ordered_json::array();
  for (LoraTarget t : config.targets) targets.push_back(lora_target_name(t));
  nlohmann::ordered_json j = {
      {"alpha_pattern", nlohmann::json::object()},
      {"auto_mapping", nullptr},
      {"base_model_name_or_path", base_model_name_or_path},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"lora_alpha", config.alpha},
      {"lora_dropout", config.dropout},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"r", config.r},
      {"rank_pattern", nlohmann::json::object()},
      {"revision", nullptr},
      {"target_modules", targets},
      {"task_type", "CAUSAL_LM"},
      {"use_dora", false},
      {"use_rslora", config.rslora},
  };
  return write_file_atomic(dir + "/adapter_config.json", j.dump(2) + "\n");
}

Result<Adapter> load(const std::string& dir, const ModelConfig& model) {
  const std::string cfg_path = dir + "/adapter_config.json";
  TL_ASSIGN_OR_RETURN(std::string text, read_file(cfg_path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument("{}: invalid JSON ({})", cfg_path, json_syntax_error(text));
  if (!j.is_object()) return invalid_argument("{}: not a JSON object", cfg_path);
  if (j.value("peft_type", "") != "LORA") {
    return unimplemented("{}: peft_type '{}' is not supported (expected LORA)", cfg_path, j.value("peft_type", ""));
  }
  if (j.value("use_dora", false)) return unimplemented("{}: use_dora=true (DoRA) is not supported", cfg_path);
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (j.contains(key) && j[key].is_object() && !j[key].empty())
      return unimplemented("{}: per-module {} is not supported", cfg_path, key);
  }
  Adapter a;
  if (!j.contains("r") || !j["r"].is_number_integer()) return invalid_argument("{}: field 'r' must be an integer", cfg_path);
  a.config.r = j["r"].get<int64_t>();
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number())
    return invalid_argument("{}: field 'lora_alpha' must be a number", cfg_path);
  a.config.alpha = j["lora_alpha"].get<double>();
  a.config.dropout = j.value("lora_dropout", 0.0);
  a.config.rslora = j.value("use_rslora", false);
  if (!j.contains("target_modules") || !j["target_modules"].is_array()) {
    return unimplemented("{}: target_modules must be a list of module names (regex strings are not supported)",
                         cfg_path);
  }
  for (const auto& t : j["target_modules"]) {
    if (!t.is_string()) return invalid_argument("{}: target_modules must hold strings", cfg_path);
    auto target = lora_target_from_name(t.get<std::string>());
    if (!target.is_ok()) return target.status().with_context(cfg_path);
    a.config.targets.push_back(*target);
  }
  const std::string st_path = dir + "/adapter_model.safetensors";
  TL_ASSIGN_OR_RETURN(safetensors::File file, safetensors::File::open(st_path));
  a.weights.layers.resize(static_cast<size_t>(model.num_layers));
  for (int64_t l = 0; l < model.num_layers; ++l) {
    for (LoraTarget t : a.config.targets) {
      auto [out, in] = lora_target_shape(model, t);
      LoraModule& m = a.weights.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      for (bool is_a : {true, false}) {
        const std::string name = tensor_name(l, t, is_a);
        TL_ASSIGN_OR_RETURN(Tensor raw, file.tensor(name));
        const std::vector<int64_t> want = is_a ? std::vector<int64_t>{a.config.r, in} : std::vector<int64_t>{out, a.config.r};
        if (raw.shape() != want) {
          Tensor expect = Tensor::view(DType::kF32, want, nullptr, nullptr);
          return invalid_argument("{}: tensor '{}' has shape {}, expected {} for r={} on this model", st_path, name,
                                  raw.shape_string(), expect.shape_string(), a.config.r);
        }
        (is_a ? m.a : m.b) = raw.to_f32();
      }
    }
  }
  return a;
}

}  // namespace tl::peft
