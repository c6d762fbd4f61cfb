// The PyTorch reference's training cases (tests/reference/train_reference.py) as the tests read them:
// the model, the reference examples packed into one sequence, the case's JSON, the reference's LoRA
// init through our PEFT reader, and the per-tensor comparison against the reference's gradients.
// Shared by the trainer's gradient tests (tests/model/) and the DPO tests (tests/train/).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/peft.h"
#include "model/train_step.h"

namespace tl::reference_case {

inline const std::vector<std::string> kCases = {"llama_f32", "qwen2_tied_f32", "qwen3_f32", "mistral_window_f32", "llama_bias_f32"};

inline std::string dir_of(const std::string& name) { return std::string(TL_FIXTURES_DIR) + "/models/" + name; }

struct Case {
  Model model;
  TrainSequence seq;
  nlohmann::json meta;
};

inline Case load_case(const std::string& name) {
  auto model = Model::load(dir_of(name));
  EXPECT_TRUE(model.is_ok()) << model.status().message();
  auto text = read_file(dir_of(name) + "/train_case.json");
  EXPECT_TRUE(text.is_ok());
  auto meta = nlohmann::json::parse(*text);
  TrainSequence seq;
  for (const auto& ex : meta["examples"])
    seq.append(ex["tokens"].get<std::vector<int32_t>>(), ex["targets"].get<std::vector<int32_t>>());
  return Case{std::move(model).value(), std::move(seq), meta};
}

// Max |a - b| relative to max |b| over the tensor (gradient tensors mix scales; the bound is per tensor).
inline double rel_error(const Tensor& a, const float* b, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a.f32()[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// The LoRA init from the reference, loaded through our PEFT reader (so this also tests the key names).
inline Result<peft::Adapter> reference_lora(const Case& c, const std::string& name) {
  LoraConfig cfg;
  cfg.r = c.meta["lora"]["r"].get<int64_t>();
  cfg.alpha = c.meta["lora"]["alpha"].get<double>();
  for (int t = 0; t < kLoraTargetCount; ++t) cfg.targets.push_back(static_cast<LoraTarget>(t));
  auto file = safetensors::File::open(dir_of(name) + "/train_lora_init.safetensors");
  if (!file.is_ok()) return file.status();
  peft::Adapter a{LoraWeights(), cfg};
  a.weights.layers.resize(static_cast<size_t>(c.model.config().num_layers));
  for (int64_t l = 0; l < c.model.config().num_layers; ++l)
    for (LoraTarget t : cfg.targets) {
      LoraModule& m = a.weights.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      TL_ASSIGN_OR_RETURN(Tensor ta, file->tensor(peft::tensor_name(l, t, true)));
      TL_ASSIGN_OR_RETURN(Tensor tb, file->tensor(peft::tensor_name(l, t, false)));
      m.a = ta.to_f32();
      m.b = tb.to_f32();
    }
  return a;
}

// Expects every LoRA gradient within 1e-4 (relative, per tensor) of the reference's in `file` (in the
// case's directory); returns the worst.
inline double expect_lora_grads_match(LoraWeights& grads, const std::string& name, const std::string& what = "",
                                      const std::string& file = "expected_lora_grads.safetensors") {
  auto expected = safetensors::File::open(dir_of(name) + "/" + file);
  EXPECT_TRUE(expected.is_ok());
  if (!expected.is_ok()) return 1.0;
  double worst = 0;
  grads.for_each([&](int64_t l, LoraTarget t, LoraModule& m) {
    for (bool is_a : {true, false}) {
      auto e = expected->tensor(peft::tensor_name(l, t, is_a));
      ASSERT_TRUE(e.is_ok());
      const Tensor& got = is_a ? m.a : m.b;
      ASSERT_EQ(got.shape(), e->shape());
      const double err = rel_error(got, std::as_const(*e).f32(), got.numel());
      worst = std::max(worst, err);
      EXPECT_LE(err, 1e-4) << peft::tensor_name(l, t, is_a) << what;
    }
  });
  return worst;
}

}  // namespace tl::reference_case
