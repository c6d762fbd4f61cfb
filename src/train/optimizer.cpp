#include "train/optimizer.h"

#include <cmath>

namespace tl {

void adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, int64_t step, double lr,
                  const AdamWOptions& o, bool decay) {
  float* p = param.f32();
  const float* g = grad.f32();
  float* mp = m.f32();
  float* vp = v.f32();
  const int64_t n = param.numel();
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  const float eps = static_cast<float>(o.eps);
  const float decay_factor = decay ? static_cast<float>(1.0 - lr * o.weight_decay) : 1.0f;
  for (int64_t i = 0; i < n; ++i) {
    // torch.optim.AdamW (single-tensor path): decay, moments, then p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
    p[i] *= decay_factor;
    mp[i] = b1 * mp[i] + (1.0f - b1) * g[i];
    vp[i] = b2 * vp[i] + (1.0f - b2) * g[i] * g[i];
    const float denom = std::sqrt(vp[i]) / bc2_sqrt + eps;
    p[i] -= step_size * mp[i] / denom;
  }
}

Result<LrSchedule> lr_schedule_from_name(const std::string& name) {
  if (name == "constant") return LrSchedule::kConstant;
  if (name == "linear") return LrSchedule::kLinear;
  if (name == "cosine") return LrSchedule::kCosine;
  return invalid_argument("unknown lr_scheduler '{}' (expected constant, linear or cosine)", name);
}

double lr_at(LrSchedule schedule, double base_lr, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return base_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  switch (schedule) {
    case LrSchedule::kConstant: return base_lr;
    case LrSchedule::kLinear:
      return base_lr * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
    case LrSchedule::kCosine: {
      const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
      return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
  }
  return base_lr;
}

}  // namespace tl
