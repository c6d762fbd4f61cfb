// YAML ⇄ JobSpec with yaml-cpp. Every mapping is walked key by key against the known keys so that a
// typo (`learning_rat`) is an error with its line rather than a silently ignored default.
#include "jobs/job_spec.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <set>

namespace tl::jobs {
namespace {

// Line numbers in yaml-cpp marks are 0-based; messages use 1-based like editors.
int line_of(const YAML::Node& n) { return n.Mark().line + 1; }

struct Ctx {
  const std::string& source;
  Status at(const YAML::Node& n, const std::string& what) const {
    return invalid_argument("{}:{}: {}", source, line_of(n), what);
  }
};

template <typename T>
Status scalar(const Ctx& c, const YAML::Node& n, const std::string& key, T& out) {
  if (!n.IsScalar()) return c.at(n, fmt::format("'{}' must be a scalar", key));
  try {
    out = n.as<T>();
  } catch (const YAML::Exception&) {
    const char* want = std::is_same_v<T, bool> ? "true or false" : std::is_integral_v<T> ? "an integer" : std::is_floating_point_v<T> ? "a number" : "a string";
    return c.at(n, fmt::format("'{}' must be {}, got '{}'", key, want, n.Scalar()));
  }
  return Status::ok();
}

using Handlers = std::map<std::string, std::function<Status(const YAML::Node&)>>;

Status walk(const Ctx& c, const YAML::Node& map, const std::string& where, const Handlers& handlers) {
  if (!map.IsMap()) return c.at(map, fmt::format("'{}' must be a mapping", where));
  for (const auto& kv : map) {
    std::string key = kv.first.as<std::string>();
    auto it = handlers.find(key);
    if (it == handlers.end()) {
      std::string known;
      for (const auto& [k, h] : handlers) known += (known.empty() ? "" : ", ") + k;
      return c.at(kv.first, fmt::format("unknown key '{}'{} (known: {})", key, where.empty() ? "" : " in " + where, known));
    }
    TL_TRY(it->second(kv.second));
  }
  return Status::ok();
}

template <typename T>
std::function<Status(const YAML::Node&)> set(const Ctx& c, const std::string& key, T& out) {
  return [&c, key, &out](const YAML::Node& n) { return scalar(c, n, key, out); };
}

Status one_of(const std::string& source, const std::string& key, const std::string& v, const std::set<std::string>& allowed) {
  if (allowed.count(v)) return Status::ok();
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  return invalid_argument("{}: {} must be one of {}, got '{}'", source, key, list, v);
}

}  // namespace

Result<JobSpec> parse_job_spec(const std::string& yaml, const std::string& source, bool require_paths) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    return invalid_argument("{}:{}: invalid YAML: {}", source, e.mark.line + 1, e.msg);
  }
  JobSpec s;
  Ctx c{source};
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  // Not TL_TRY: the handlers below use TL_TRY themselves, and nesting the macro shadows its local.
  Status walked = walk(c, root, "",
              {
                  {"base_model", set(c, "base_model", s.base_model)},
                  {"method",
                   [&](const YAML::Node& n) {
                     s.method_given = true;
                     return scalar(c, n, "method", s.method);
                   }},
                  {"output_dir", set(c, "output_dir", s.output_dir)},
                  {"dataset",
                   [&](const YAML::Node& n) {
                     return walk(c, n, "dataset",
                                 {{"train", set(c, "dataset.train", s.dataset.train)},
                                  {"validation", set(c, "dataset.validation", s.dataset.validation)},
                                  {"format", set(c, "dataset.format", s.dataset.format)},
                                  {"train_on", set(c, "dataset.train_on", s.dataset.train_on)}});
                   }},
                  {"lora",
                   [&](const YAML::Node& n) {
                     return walk(c, n, "lora",
                                 {{"r", set(c, "lora.r", s.lora.r)},
                                  {"alpha", set(c, "lora.alpha", s.lora.alpha)},
                                  {"dropout", set(c, "lora.dropout", s.lora.dropout)},
                                  {"rslora", set(c, "lora.rslora", s.lora.rslora)},
                                  {"target_modules", [&](const YAML::Node& t) -> Status {
                                     if (!t.IsSequence() || t.size() == 0)
                                       return c.at(t, "'lora.target_modules' must be a non-empty list of module names");
                                     s.lora.target_modules.clear();
                                     for (const auto& m : t) {
                                       std::string name;
                                       TL_TRY(scalar(c, m, "lora.target_modules", name));
                                       s.lora.target_modules.push_back(name);
                                     }
                                     return Status::ok();
                                   }}});
                   }},
                  {"quantization",
                   [&](const YAML::Node& n) {
                     return walk(c, n, "quantization",
                                 {{"type", set(c, "quantization.type", s.quantization.type)},
                                  {"double_quant", set(c, "quantization.double_quant", s.quantization.double_quant)}});
                   }},
                  {"dpo",
                   [&](const YAML::Node& n) {
                     return walk(c, n, "dpo", {{"beta", set(c, "dpo.beta", s.dpo.beta)},
                                              {"loss", set(c, "dpo.loss", s.dpo.loss)},
                                              {"adapter", set(c, "dpo.adapter", s.dpo.adapter)}});
                   }},
                  {"training",
                   [&](const YAML::Node& n) {
                     TrainingSpec& t = s.training;
                     return walk(c, n, "training",
                                 {{"epochs", set(c, "training.epochs", t.epochs)},
                                  {"micro_batch_size", set(c, "training.micro_batch_size", t.micro_batch_size)},
                                  {"gradient_accumulation", set(c, "training.gradient_accumulation", t.gradient_accumulation)},
                                  {"learning_rate", set(c, "training.learning_rate", t.learning_rate)},
                                  {"lr_scheduler", set(c, "training.lr_scheduler", t.lr_scheduler)},
                                  {"warmup_ratio", set(c, "training.warmup_ratio", t.warmup_ratio)},
                                  {"weight_decay", set(c, "training.weight_decay", t.weight_decay)},
                                  {"max_grad_norm", set(c, "training.max_grad_norm", t.max_grad_norm)},
                                  {"max_seq_len", set(c, "training.max_seq_len", t.max_seq_len)},
                                  {"packing", set(c, "training.packing", t.packing)},
                                  {"gradient_checkpointing", set(c, "training.gradient_checkpointing", t.gradient_checkpointing)},
                                  {"precision", set(c, "training.precision", t.precision)},
                                  {"seed", set(c, "training.seed", t.seed)},
                                  {"max_steps", set(c, "training.max_steps", t.max_steps)}});
                   }},
                  {"checkpointing",
                   [&](const YAML::Node& n) {
                     return walk(c, n, "checkpointing",
                                 {{"every_steps", set(c, "checkpointing.every_steps", s.checkpointing.every_steps)},
                                  {"keep", set(c, "checkpointing.keep", s.checkpointing.keep)}});
                   }},
              });
  if (!walked.is_ok()) return walked;
  if (require_paths) {
    if (s.base_model.empty()) return invalid_argument("{}: missing required key 'base_model'", source);
    if (s.dataset.train.empty()) return invalid_argument("{}: missing required key 'dataset.train'", source);
    if (s.output_dir.empty()) return invalid_argument("{}: missing required key 'output_dir'", source);
  }
  TL_TRY(validate_job_spec(s, source));
  return s;
}

Status validate_job_spec(const JobSpec& s, const std::string& source) {
  TL_TRY(one_of(source, "method", s.method, {"lora", "qlora", "full", "dpo"}));
  TL_TRY(one_of(source, "dataset.format", s.dataset.format, {"auto", "openai_chat", "sharegpt", "alpaca", "input_output", "dpo"}));
  TL_TRY(one_of(source, "dataset.train_on", s.dataset.train_on, {"assistant", "all"}));
  TL_TRY(one_of(source, "quantization.type", s.quantization.type, {"nf4"}));
  TL_TRY(one_of(source, "dpo.loss", s.dpo.loss, {"sigmoid", "ipo", "hinge"}));
  TL_TRY(one_of(source, "dpo.adapter", s.dpo.adapter, {"lora", "qlora", "full"}));
  TL_TRY(one_of(source, "training.lr_scheduler", s.training.lr_scheduler, {"cosine", "linear", "constant"}));
  TL_TRY(one_of(source, "training.precision", s.training.precision, {"fp32", "bf16"}));
  if (s.training.precision == "bf16" && trains_all_weights(s))
    return invalid_argument("{}: training.precision: bf16 is for a LoRA on a frozen base (lora, qlora, dpo with "
                            "adapter lora or qlora); full fine-tuning trains in fp32",
                            source);
  auto range = [&](const char* key, double v, double lo, double hi) -> Status {
    if (v >= lo && v <= hi) return Status::ok();
    return invalid_argument("{}: {} must be in [{}, {}], got {}", source, key, lo, hi, v);
  };
  TL_TRY(range("lora.r", static_cast<double>(s.lora.r), 1, 4096));
  TL_TRY(range("lora.alpha", s.lora.alpha, 1e-6, 1e6));
  TL_TRY(range("lora.dropout", s.lora.dropout, 0, 0.99));
  TL_TRY(range("dpo.beta", s.dpo.beta, 1e-6, 100));
  TL_TRY(range("training.epochs", static_cast<double>(s.training.epochs), 1, 1000));
  TL_TRY(range("training.micro_batch_size", static_cast<double>(s.training.micro_batch_size), 1, 4096));
  TL_TRY(range("training.gradient_accumulation", static_cast<double>(s.training.gradient_accumulation), 1, 4096));
  TL_TRY(range("training.learning_rate", s.training.learning_rate, 1e-12, 1));
  TL_TRY(range("training.warmup_ratio", s.training.warmup_ratio, 0, 0.999));  // the trainer wants [0, 1)
  TL_TRY(range("training.weight_decay", s.training.weight_decay, 0, 10));
  TL_TRY(range("training.max_grad_norm", s.training.max_grad_norm, 0, 1e6));
  TL_TRY(range("training.max_seq_len", static_cast<double>(s.training.max_seq_len), 16, 1 << 20));
  TL_TRY(range("training.max_steps", static_cast<double>(s.training.max_steps), 0, 1e12));
  TL_TRY(range("checkpointing.every_steps", static_cast<double>(s.checkpointing.every_steps), 1, 1e9));
  TL_TRY(range("checkpointing.keep", static_cast<double>(s.checkpointing.keep), 1, 1e6));
  if (s.method == "dpo" && s.dataset.format != "auto" && s.dataset.format != "dpo")
    return invalid_argument("{}: method dpo needs dataset.format dpo (or auto), got '{}'", source, s.dataset.format);
  return Status::ok();
}

bool trains_all_weights(const JobSpec& s) { return s.method == "full" || (s.method == "dpo" && s.dpo.adapter == "full"); }

bool nf4_base(const JobSpec& s) { return s.method == "qlora" || (s.method == "dpo" && s.dpo.adapter == "qlora"); }

std::string job_spec_to_yaml(const JobSpec& s) {
  YAML::Emitter e;
  e.SetDoublePrecision(8);
  e << YAML::BeginMap;
  e << YAML::Key << "base_model" << YAML::Value << s.base_model;
  e << YAML::Key << "method" << YAML::Value << s.method;
  e << YAML::Key << "dataset" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "train" << YAML::Value << s.dataset.train;
  if (!s.dataset.validation.empty()) e << YAML::Key << "validation" << YAML::Value << s.dataset.validation;
  e << YAML::Key << "format" << YAML::Value << s.dataset.format;
  e << YAML::Key << "train_on" << YAML::Value << s.dataset.train_on << YAML::EndMap;
  e << YAML::Key << "lora" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "r" << YAML::Value << s.lora.r << YAML::Key << "alpha" << YAML::Value << s.lora.alpha;
  e << YAML::Key << "dropout" << YAML::Value << s.lora.dropout << YAML::Key << "rslora" << YAML::Value << s.lora.rslora;
  e << YAML::Key << "target_modules" << YAML::Value << YAML::Flow << s.lora.target_modules << YAML::EndMap;
  e << YAML::Key << "quantization" << YAML::Value << YAML::BeginMap << YAML::Key << "type" << YAML::Value << s.quantization.type
    << YAML::Key << "double_quant" << YAML::Value << s.quantization.double_quant << YAML::EndMap;
  e << YAML::Key << "dpo" << YAML::Value << YAML::BeginMap << YAML::Key << "beta" << YAML::Value << s.dpo.beta << YAML::Key
    << "loss" << YAML::Value << s.dpo.loss << YAML::Key << "adapter" << YAML::Value << s.dpo.adapter << YAML::EndMap;
  const TrainingSpec& t = s.training;
  e << YAML::Key << "training" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "epochs" << YAML::Value << t.epochs << YAML::Key << "micro_batch_size" << YAML::Value << t.micro_batch_size;
  e << YAML::Key << "gradient_accumulation" << YAML::Value << t.gradient_accumulation;
  e << YAML::Key << "learning_rate" << YAML::Value << t.learning_rate << YAML::Key << "lr_scheduler" << YAML::Value << t.lr_scheduler;
  e << YAML::Key << "warmup_ratio" << YAML::Value << t.warmup_ratio << YAML::Key << "weight_decay" << YAML::Value << t.weight_decay;
  e << YAML::Key << "max_grad_norm" << YAML::Value << t.max_grad_norm << YAML::Key << "max_seq_len" << YAML::Value << t.max_seq_len;
  e << YAML::Key << "packing" << YAML::Value << t.packing << YAML::Key << "gradient_checkpointing" << YAML::Value
    << t.gradient_checkpointing;
  if (t.precision != "fp32") e << YAML::Key << "precision" << YAML::Value << t.precision;
  e << YAML::Key << "seed" << YAML::Value << t.seed;
  if (t.max_steps > 0) e << YAML::Key << "max_steps" << YAML::Value << t.max_steps;
  e << YAML::EndMap;
  e << YAML::Key << "checkpointing" << YAML::Value << YAML::BeginMap << YAML::Key << "every_steps" << YAML::Value
    << s.checkpointing.every_steps << YAML::Key << "keep" << YAML::Value << s.checkpointing.keep << YAML::EndMap;
  e << YAML::Key << "output_dir" << YAML::Value << s.output_dir;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace tl::jobs
