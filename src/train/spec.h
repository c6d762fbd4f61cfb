// TrainSpec: the unified job spec (one YAML schema for every method; ARCHITECTURE.md shows it whole).
//
// Unknown keys and wrong types are errors that name the file, the YAML line and the key; missing keys
// take the documented defaults. Paths in the spec are resolved relative to the spec file's directory.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(tl::TrainSpec spec, tl::TrainSpec::load("train.yaml"));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/lora.h"

namespace tl {

enum class TrainMethod { kLora, kQlora, kFull, kDpo };
const char* train_method_name(TrainMethod m);

enum class DataFormat { kAuto, kOpenAIChat, kShareGPT, kAlpaca, kInputOutput, kDpo };
const char* data_format_name(DataFormat f);
Result<DataFormat> data_format_from_name(const std::string& name);

struct TrainSpec {
  std::string base_model;
  TrainMethod method = TrainMethod::kLora;
  // dataset
  std::string train_path;
  std::string validation_path;  // optional
  DataFormat format = DataFormat::kAuto;
  bool train_on_all = false;    // train_on: all | assistant
  // lora
  LoraConfig lora;
  // quantization (qlora)
  std::string quant_type = "nf4";
  bool double_quant = true;
  // dpo
  double dpo_beta = 0.1;
  std::string dpo_loss = "sigmoid";
  // dpo.adapter: lora (f32 base), qlora (the base, policy's and reference's, held as NF4 per the
  // quantization section) or full (no adapter: every weight trains, as method: full, and the output is a
  // full model; the reference is the base as loaded, scored once, so no second copy of it is held). Its
  // own key, not the quantization section's presence: the control plane writes that section into every
  // spec.
  std::string dpo_adapter = "lora";
  // training
  int64_t epochs = 3;
  int64_t micro_batch_size = 2;
  int64_t gradient_accumulation = 8;
  double learning_rate = 1e-4;
  std::string lr_scheduler = "cosine";
  double warmup_ratio = 0.03;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  int64_t max_seq_len = 2048;
  bool packing = true;
  bool gradient_checkpointing = true;
  // fp32, or bf16: mixed precision as torch.autocast(bfloat16) / Hugging Face's bf16: true -- the frozen
  // matrices held and multiplied as bf16 with f32 sums as bf16 tiles (tensor/amx.h); LoRA's weights, their
  // gradients, the optimizer and every other op stay f32. QLoRA keeps its base as NF4 and multiplies each
  // dequantised block as bf16 tiles (bitsandbytes' bf16 compute dtype). For a LoRA on a frozen base (lora,
  // qlora, dpo with adapter lora or qlora); needs a CPU with AVX512-BF16 (AMX when present).
  std::string precision = "fp32";
  uint64_t seed = 42;
  int64_t max_steps = 0;  // 0: epochs decide (extension: stop after this many optimizer steps)
  // checkpointing
  int64_t checkpoint_every = 100;
  int64_t checkpoint_keep = 3;
  std::string output_dir;
  // full fine-tuning from random initialisation (the demo's pretraining); base_model then names a
  // directory with config.json and tokenizer files only.
  bool init_random = false;

  // Every weight trains (method: full, or dpo with adapter: full); otherwise a LoRA adapter does.
  bool trains_all_weights() const {
    return method == TrainMethod::kFull || (method == TrainMethod::kDpo && dpo_adapter == "full");
  }
  // The frozen base is held as NF4 (method: qlora, or dpo with adapter: qlora).
  bool nf4_base() const { return method == TrainMethod::kQlora || (method == TrainMethod::kDpo && dpo_adapter == "qlora"); }

  static Result<TrainSpec> parse(const std::string& yaml_text, const std::string& origin, const std::string& base_dir);
  static Result<TrainSpec> load(const std::string& path);
};

}  // namespace tl
