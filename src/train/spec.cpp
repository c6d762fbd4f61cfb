#include "train/spec.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "core/file.h"
#include "train/dpo.h"

namespace tl {

const char* train_method_name(TrainMethod m) {
  switch (m) {
    case TrainMethod::kLora: return "lora";
    case TrainMethod::kQlora: return "qlora";
    case TrainMethod::kFull: return "full";
    case TrainMethod::kDpo: return "dpo";
  }
  return "?";
}

const char* data_format_name(DataFormat f) {
  switch (f) {
    case DataFormat::kAuto: return "auto";
    case DataFormat::kOpenAIChat: return "openai_chat";
    case DataFormat::kShareGPT: return "sharegpt";
    case DataFormat::kAlpaca: return "alpaca";
    case DataFormat::kInputOutput: return "input_output";
    case DataFormat::kDpo: return "dpo";
  }
  return "?";
}

Result<DataFormat> data_format_from_name(const std::string& name) {
  for (DataFormat f : {DataFormat::kAuto, DataFormat::kOpenAIChat, DataFormat::kShareGPT, DataFormat::kAlpaca,
                       DataFormat::kInputOutput, DataFormat::kDpo})
    if (name == data_format_name(f)) return f;
  return invalid_argument("unknown dataset format '{}' (expected auto, openai_chat, sharegpt, alpaca, input_output or dpo)",
                          name);
}

namespace {

// Reads typed scalars from YAML mappings, with errors that carry file:line and the dotted key.
class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  Status where(const YAML::Node& n, const std::string& key, const std::string& what) const {
    return invalid_argument("{}:{}: {}: {}", origin_, n.Mark().line + 1, key, what);
  }

  // Checks that a mapping holds only `known` keys, each once (yaml-cpp keeps duplicates, and a lookup
  // would silently read the first).
  Status only(const YAML::Node& map, const std::string& prefix, const std::set<std::string>& known) const {
    if (!map.IsMap()) return where(map, prefix.empty() ? "spec" : prefix, "expected a mapping");
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string k = it->first.as<std::string>();
      if (!seen.insert(k).second)
        return where(it->first, prefix.empty() ? k : prefix + "." + k, "duplicate key (given once already)");
      if (!known.count(k)) {
        std::string list;
        for (const auto& s : known) list += (list.empty() ? "" : ", ") + s;
        return where(it->first, prefix.empty() ? k : prefix + "." + k, "unknown key (expected one of: " + list + ")");
      }
    }
    return Status::ok();
  }

  template <typename T>
  Status get(const YAML::Node& map, const char* key, const std::string& prefix, T* out, const char* type_name) const {
    YAML::Node n = map[key];
    if (!n) return Status::ok();
    const std::string full = prefix.empty() ? key : prefix + "." + key;
    if (!n.IsScalar()) return where(n, full, std::string("expected ") + type_name);
    try {
      *out = n.as<T>();
    } catch (const YAML::Exception&) {
      return where(n, full, std::string("expected ") + type_name + ", got '" + n.Scalar() + "'");
    }
    return Status::ok();
  }

  Status get_positive(const YAML::Node& map, const char* key, const std::string& prefix, int64_t* out) const {
    TL_TRY(get(map, key, prefix, out, "an integer"));
    if (map[key] && *out < 1) return where(map[key], prefix + "." + key, "must be >= 1");
    return Status::ok();
  }

 private:
  std::string origin_;
};

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

}  // namespace

Result<TrainSpec> TrainSpec::parse(const std::string& yaml_text, const std::string& origin, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    return invalid_argument("{}:{}: YAML syntax error: {}", origin, e.mark.line + 1, e.msg);
  }
  if (!root || root.IsNull()) return invalid_argument("{}: empty spec (expected a mapping with base_model, dataset, ...)", origin);
  Reader r(origin);
  TL_TRY(r.only(root, "", {"base_model", "method", "dataset", "lora", "quantization", "dpo", "training",
                          "checkpointing", "output_dir", "init"}));
  TrainSpec s;
  std::string method = "lora";
  TL_TRY(r.get(root, "base_model", "", &s.base_model, "a path"));
  TL_TRY(r.get(root, "method", "", &method, "a string"));
  TL_TRY(r.get(root, "output_dir", "", &s.output_dir, "a path"));
  if (s.base_model.empty()) return invalid_argument("{}: base_model: required (a Hugging Face model directory)", origin);
  if (s.output_dir.empty()) return invalid_argument("{}: output_dir: required", origin);
  if (method == "lora") s.method = TrainMethod::kLora;
  else if (method == "qlora") s.method = TrainMethod::kQlora;
  else if (method == "full") s.method = TrainMethod::kFull;
  else if (method == "dpo") s.method = TrainMethod::kDpo;
  else return r.where(root["method"], "method", "unknown method '" + method + "' (expected lora, qlora, full or dpo)");

  if (YAML::Node init = root["init"]) {
    std::string v = init.IsScalar() ? init.Scalar() : "";
    if (v != "random" && v != "pretrained") return r.where(init, "init", "expected 'pretrained' or 'random'");
    s.init_random = v == "random";
  }

  YAML::Node ds = root["dataset"];
  if (!ds) return invalid_argument("{}: dataset: required (with at least dataset.train)", origin);
  TL_TRY(r.only(ds, "dataset", {"train", "validation", "format", "train_on"}));
  TL_TRY(r.get(ds, "train", "dataset", &s.train_path, "a path"));
  TL_TRY(r.get(ds, "validation", "dataset", &s.validation_path, "a path"));
  if (s.train_path.empty()) return r.where(ds, "dataset.train", "required");
  std::string format = "auto", train_on = "assistant";
  TL_TRY(r.get(ds, "format", "dataset", &format, "a string"));
  auto f = data_format_from_name(format);
  if (!f.is_ok()) return r.where(ds["format"], "dataset.format", f.status().message());
  s.format = *f;
  TL_TRY(r.get(ds, "train_on", "dataset", &train_on, "a string"));
  if (train_on != "assistant" && train_on != "all") return r.where(ds["train_on"], "dataset.train_on", "expected assistant or all");
  s.train_on_all = train_on == "all";
  if (s.train_on_all && s.method == TrainMethod::kDpo)
    return r.where(ds["train_on"], "dataset.train_on", "method: dpo trains on the completions only (leave train_on out)");

  s.lora.r = 32;
  s.lora.alpha = 64;
  s.lora.dropout = 0.05;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  if (YAML::Node lo = root["lora"]) {
    TL_TRY(r.only(lo, "lora", {"r", "alpha", "dropout", "rslora", "target_modules"}));
    TL_TRY(r.get_positive(lo, "r", "lora", &s.lora.r));
    TL_TRY(r.get(lo, "alpha", "lora", &s.lora.alpha, "a number"));
    TL_TRY(r.get(lo, "dropout", "lora", &s.lora.dropout, "a number"));
    TL_TRY(r.get(lo, "rslora", "lora", &s.lora.rslora, "true or false"));
    if (YAML::Node tm = lo["target_modules"]) {
      if (!tm.IsSequence()) return r.where(tm, "lora.target_modules", "expected a list of module names");
      targets.clear();
      for (const auto& t : tm) {
        if (!t.IsScalar()) return r.where(t, "lora.target_modules", "expected module names");
        targets.push_back(t.Scalar());
      }
    }
    if (!(s.lora.dropout >= 0 && s.lora.dropout < 1)) return r.where(lo["dropout"], "lora.dropout", "must be in [0, 1)");
    if (!(s.lora.alpha > 0)) return r.where(lo["alpha"], "lora.alpha", "must be positive");
  }
  for (const auto& t : targets) {
    auto target = lora_target_from_name(t);
    if (!target.is_ok()) return r.where(root["lora"] ? root["lora"]["target_modules"] : root, "lora.target_modules", target.status().message());
    s.lora.targets.push_back(*target);
  }
  if (s.lora.targets.empty()) return invalid_argument("{}: lora.target_modules: at least one module is required", origin);

  if (YAML::Node q = root["quantization"]) {
    TL_TRY(r.only(q, "quantization", {"type", "double_quant"}));
    TL_TRY(r.get(q, "type", "quantization", &s.quant_type, "a string"));
    TL_TRY(r.get(q, "double_quant", "quantization", &s.double_quant, "true or false"));
    if (s.quant_type != "nf4") return r.where(q["type"], "quantization.type", "only nf4 is supported");
  }
  if (YAML::Node d = root["dpo"]) {
    TL_TRY(r.only(d, "dpo", {"beta", "loss", "adapter"}));
    TL_TRY(r.get(d, "beta", "dpo", &s.dpo_beta, "a number"));
    TL_TRY(r.get(d, "loss", "dpo", &s.dpo_loss, "a string"));
    TL_TRY(r.get(d, "adapter", "dpo", &s.dpo_adapter, "a string"));
    if (s.dpo_adapter != "lora" && s.dpo_adapter != "qlora" && s.dpo_adapter != "full")
      return r.where(d["adapter"], "dpo.adapter", "expected lora, qlora or full");
    // The control plane's bound too (jobs/job_spec.cpp): beyond it beta h overflows the loss.
    if (d["beta"] && !(s.dpo_beta > 0 && s.dpo_beta <= 100)) return r.where(d["beta"], "dpo.beta", "must be in (0, 100]");
    if (d["loss"] && !dpo_loss_from_name(s.dpo_loss).is_ok())
      return r.where(d["loss"], "dpo.loss", "expected sigmoid, hinge or ipo");
  }
  if (YAML::Node t = root["training"]) {
    TL_TRY(r.only(t, "training", {"epochs", "micro_batch_size", "gradient_accumulation", "learning_rate", "lr_scheduler",
                                  "warmup_ratio", "weight_decay", "max_grad_norm", "max_seq_len", "packing",
                                  "gradient_checkpointing", "precision", "seed", "max_steps"}));
    TL_TRY(r.get_positive(t, "epochs", "training", &s.epochs));
    TL_TRY(r.get_positive(t, "micro_batch_size", "training", &s.micro_batch_size));
    TL_TRY(r.get_positive(t, "gradient_accumulation", "training", &s.gradient_accumulation));
    TL_TRY(r.get(t, "learning_rate", "training", &s.learning_rate, "a number"));
    TL_TRY(r.get(t, "lr_scheduler", "training", &s.lr_scheduler, "a string"));
    TL_TRY(r.get(t, "warmup_ratio", "training", &s.warmup_ratio, "a number"));
    TL_TRY(r.get(t, "weight_decay", "training", &s.weight_decay, "a number"));
    TL_TRY(r.get(t, "max_grad_norm", "training", &s.max_grad_norm, "a number"));
    TL_TRY(r.get_positive(t, "max_seq_len", "training", &s.max_seq_len));
    TL_TRY(r.get(t, "packing", "training", &s.packing, "true or false"));
    TL_TRY(r.get(t, "gradient_checkpointing", "training", &s.gradient_checkpointing, "true or false"));
    TL_TRY(r.get(t, "seed", "training", &s.seed, "a non-negative integer"));
    TL_TRY(r.get(t, "max_steps", "training", &s.max_steps, "an integer"));
    TL_TRY(r.get(t, "precision", "training", &s.precision, "a string"));
    if (s.precision != "fp32" && s.precision != "bf16")
      return r.where(t["precision"], "training.precision", "expected fp32 or bf16");
    if (s.precision == "bf16" && s.trains_all_weights())
      return r.where(t["precision"], "training.precision",
                     "bf16 is for a LoRA on a frozen base (lora, qlora, dpo with adapter lora or qlora); full "
                     "fine-tuning trains in fp32");
    if (!(s.learning_rate > 0)) return r.where(t["learning_rate"], "training.learning_rate", "must be positive");
    if (!(s.warmup_ratio >= 0 && s.warmup_ratio < 1)) return r.where(t["warmup_ratio"], "training.warmup_ratio", "must be in [0, 1)");
    if (s.lr_scheduler != "cosine" && s.lr_scheduler != "linear" && s.lr_scheduler != "constant")
      return r.where(t["lr_scheduler"], "training.lr_scheduler", "expected cosine, linear or constant");
  }
  if (YAML::Node c = root["checkpointing"]) {
    TL_TRY(r.only(c, "checkpointing", {"every_steps", "keep"}));
    TL_TRY(r.get_positive(c, "every_steps", "checkpointing", &s.checkpoint_every));
    TL_TRY(r.get_positive(c, "keep", "checkpointing", &s.checkpoint_keep));
  }
  s.base_model = resolve(base_dir, s.base_model);
  s.train_path = resolve(base_dir, s.train_path);
  s.validation_path = resolve(base_dir, s.validation_path);
  s.output_dir = resolve(base_dir, s.output_dir);
  return s;
}

Result<TrainSpec> TrainSpec::load(const std::string& path) {
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  std::string dir = std::filesystem::path(path).parent_path().string();
  return parse(text, path, dir.empty() ? "." : dir);
}

}  // namespace tl
