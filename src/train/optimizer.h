// AdamW (decoupled weight decay, as torch.optim.AdamW) and learning-rate schedules with warmup.
//
// Parameters are visited as (param, grad, m, v) tensor quadruples; parameters excluded from decay
// (norms and biases) are marked per group. State (step count, moments) is plain tensors, so checkpoints
// save and restore it exactly.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "tensor/tensor.h"

namespace tl {

struct AdamWOptions {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// One AdamW update of `param` from `grad`, `step` counting from 1 (as torch's state['step'] after
// increment). m and v are the moment tensors (updated in place).
void adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, int64_t step, double lr,
                  const AdamWOptions& options, bool decay);

enum class LrSchedule { kConstant, kLinear, kCosine };
Result<LrSchedule> lr_schedule_from_name(const std::string& name);

// Learning rate at optimizer step `step` (0-based) of `total`, with `warmup` linear warmup steps, as
// transformers' get_{constant,linear,cosine}_schedule_with_warmup.
double lr_at(LrSchedule schedule, double base_lr, int64_t step, int64_t total, int64_t warmup);

}  // namespace tl
