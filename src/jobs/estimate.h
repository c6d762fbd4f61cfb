// Preflight estimate, computed at submit and returned on the job: how many device-hours a fine-tune
// will take, what it costs, how much device memory it needs, and when it should finish.
//
//   tokens        = (train tokens + validation tokens) × epochs           (from the upload's estimate)
//   FLOPs/token   = k(method) × N                                         (N from config.json)
//                   full 6N (fwd 2N + bwd 4N); lora/qlora 4N (bwd skips frozen weight grads);
//                   +2N with gradient checkpointing (the recomputed forward); qlora ×1.25 (dequant);
//                   dpo adds a reference forward (+2N ÷ epochs: scored once) over its chosen and
//                   rejected sequences
//   device-hours  = tokens × FLOPs/token ÷ throughput(device kind) ÷ 3600 (calibration table, devices.h)
//   cost          = device-hours × price_per_hour of the device
//   memory        = weights (+ grads + AdamW state for full) + activations for one micro-batch
//
// Token counts are chars/4 rather than the model's tokenizer: the estimate must be cheap at upload, and
// for English and code the ratio is within ~20% of BPE tokenizers, well inside the uncertainty of the
// throughput figure. Tests pin the arithmetic, not the accuracy.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "jobs/devices.h"
#include "jobs/job_spec.h"

namespace tl::jobs {

struct ModelShape {
  int64_t parameters = 0;
  int64_t hidden_size = 0;
  int64_t layers = 0;
};

// Reads MODEL_DIR/config.json (llama/qwen2/qwen3/mistral keys) and counts parameters.
Result<ModelShape> read_model_shape(const std::string& model_dir);

double flops_per_token(const ModelShape& m, const JobSpec& spec);
int64_t memory_mb_needed(const ModelShape& m, const JobSpec& spec);

struct Estimate {
  int64_t tokens = 0;  // trained tokens over all epochs
  double flops = 0;
  double device_hours = 0;
  double cost = 0;
  int64_t memory_mb = 0;
  std::string device_kind;  // the device the figures assume: the fastest one in the pool that fits
};

// kResourceExhausted when no device in the pool has the memory (naming need and largest device).
Result<Estimate> estimate_job(const ModelShape& m, const JobSpec& spec, int64_t train_tokens, int64_t validation_tokens,
                              const DevicePool& pool);

}  // namespace tl::jobs
