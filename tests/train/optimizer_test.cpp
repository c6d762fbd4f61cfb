// AdamW against torch.optim.AdamW (one step from the autograd gradients of the reference LoRA) and the
// learning-rate schedules against transformers' formulas.
#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/file.h"
#include "io/safetensors.h"

namespace tl {
namespace {

TEST(AdamW, OneStepMatchesTorch) {
  const std::string dir = std::string(TL_FIXTURES_DIR) + "/models/llama_f32";
  auto meta = nlohmann::json::parse(*read_file(dir + "/train_case.json"));
  auto init = safetensors::File::open(dir + "/train_lora_init.safetensors");
  auto grads = safetensors::File::open(dir + "/expected_lora_grads.safetensors");
  auto after = safetensors::File::open(dir + "/expected_lora_after_adamw.safetensors");
  ASSERT_TRUE(init.is_ok() && grads.is_ok() && after.is_ok());
  AdamWOptions o;
  o.lr = meta["adamw"]["lr"].get<double>();
  o.weight_decay = meta["adamw"]["weight_decay"].get<double>();
  int checked = 0;
  for (const auto& info : init->tensors()) {
    Tensor p = init->tensor(info.name)->to_f32();
    Tensor g = grads->tensor(info.name)->to_f32();
    Tensor m = Tensor::zeros(DType::kF32, p.shape()), v = Tensor::zeros(DType::kF32, p.shape());
    adamw_update(p, g, m, v, 1, o.lr, o, true);
    Tensor want = after->tensor(info.name)->to_f32();
    for (int64_t i = 0; i < p.numel(); ++i) ASSERT_NEAR(p.f32()[i], want.f32()[i], 1e-6) << info.name << " [" << i << "]";
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

TEST(LrSchedule, WarmupThenDecay) {
  EXPECT_DOUBLE_EQ(lr_at(LrSchedule::kCosine, 1.0, 0, 100, 10), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(LrSchedule::kCosine, 1.0, 5, 100, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(LrSchedule::kCosine, 1.0, 10, 100, 10), 1.0);
  EXPECT_NEAR(lr_at(LrSchedule::kCosine, 1.0, 55, 100, 10), 0.5, 1e-12);
  EXPECT_NEAR(lr_at(LrSchedule::kLinear, 1.0, 55, 100, 10), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(lr_at(LrSchedule::kConstant, 2.0, 55, 100, 10), 2.0);
  EXPECT_EQ(lr_schedule_from_name("step").status().message(),
            "unknown lr_scheduler 'step' (expected constant, linear or cosine)");
}

}  // namespace
}  // namespace tl
