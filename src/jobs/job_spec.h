// The unified job spec (ARCHITECTURE.md, "The unified job spec"): one YAML schema for every training
// method, as the control plane validates, stores, hands to `tuneloop train`, and exports to axolotl
// and unsloth. Unknown keys are errors naming the key and its line; missing keys take the defaults
// below. (The trainer parses the same schema on its side; tests/jobs/job_spec_test.cpp pins ours.)
//
// Usage:
//   TL_ASSIGN_OR_RETURN(JobSpec spec, parse_job_spec(yaml_text, "spec.yaml"));
//   std::string yaml = job_spec_to_yaml(spec);   // canonical form, every key written out
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tl::jobs {

struct DatasetSpec {
  std::string train;
  std::string validation;      // empty = none
  std::string format = "auto";  // auto | openai_chat | sharegpt | alpaca | input_output | dpo
  std::string train_on = "assistant";  // assistant | all
};

struct LoraSpec {
  int64_t r = 32;
  double alpha = 64;
  double dropout = 0.05;
  bool rslora = false;
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
};

struct QuantizationSpec {
  std::string type = "nf4";
  bool double_quant = true;
};

struct DpoSpec {
  double beta = 0.1;
  std::string loss = "sigmoid";  // sigmoid | ipo | hinge
  std::string adapter = "lora";   // lora | qlora (an NF4 base, per quantization) | full (every weight)
};

struct TrainingSpec {
  int64_t epochs = 3;
  int64_t micro_batch_size = 2;
  int64_t gradient_accumulation = 8;
  double learning_rate = 1.0e-4;
  std::string lr_scheduler = "cosine";  // cosine | linear | constant
  double warmup_ratio = 0.03;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  int64_t max_seq_len = 2048;
  bool packing = true;
  bool gradient_checkpointing = true;
  std::string precision = "fp32";  // fp32 | bf16 (not for full fine-tuning; the trainer checks for AVX512-BF16)
  int64_t seed = 42;
  int64_t max_steps = 0;  // 0 = epochs decide (the trainer's extension: stop after N optimizer steps)
};

struct CheckpointingSpec {
  int64_t every_steps = 100;
  int64_t keep = 3;
};

struct JobSpec {
  std::string base_model;
  std::string method = "lora";  // lora | qlora | full | dpo
  bool method_given = false;    // the YAML named the method (parse_job_spec); not written back
  DatasetSpec dataset;
  LoraSpec lora;
  QuantizationSpec quantization;
  DpoSpec dpo;
  TrainingSpec training;
  CheckpointingSpec checkpointing;
  std::string output_dir;
};

// Parses and validates. `source` names the text in errors ("spec.yaml:12: unknown key 'lr'").
// When `require_paths` is false, base_model / dataset.train / output_dir may be missing (the API fills
// them from the request).
Result<JobSpec> parse_job_spec(const std::string& yaml, const std::string& source, bool require_paths = true);
Status validate_job_spec(const JobSpec& spec, const std::string& source);
std::string job_spec_to_yaml(const JobSpec& spec);
// Every weight trains and the output is a full model (method full, or dpo with adapter: full).
bool trains_all_weights(const JobSpec& spec);
// The frozen base is held as NF4 and dequantised inside each GEMM (qlora, or dpo with adapter: qlora).
bool nf4_base(const JobSpec& spec);

}  // namespace tl::jobs
