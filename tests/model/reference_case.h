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

// Expects the gradient of every base weight within 1e-4 (relative, per tensor) of the reference's in
// `file`, by its HF name: fused q/k/v and gate/up are compared slice by slice; a tied head's gradient is
// the embedding's.
inline void expect_full_grads_match(const ModelWeights& grads, const ModelConfig& cfg, const std::string& name,
                                    const std::string& file, const std::string& what = "") {
  auto expected = safetensors::File::open(dir_of(name) + "/" + file);
  ASSERT_TRUE(expected.is_ok()) << file;
  auto check = [&](const std::string& key, const Tensor& got, int64_t row_offset) {
    auto e = expected->tensor(key);
    ASSERT_TRUE(e.is_ok()) << key;
    const int64_t cols = e->rank() == 2 ? e->dim(1) : 1;
    Tensor slice = Tensor::zeros(DType::kF32, e->shape());
    std::copy(got.f32() + row_offset * cols, got.f32() + row_offset * cols + e->numel(), slice.f32());
    EXPECT_LE(rel_error(slice, std::as_const(*e).f32(), e->numel()), 1e-4) << key << what;
  };
  check("model.embed_tokens.weight", grads.embed, 0);
  check("model.norm.weight", grads.final_norm, 0);
  if (!cfg.tie_word_embeddings) check("lm_head.weight", grads.lm_head, 0);
  const int64_t HD = cfg.q_dim(), KVD = cfg.kv_dim(), I = cfg.intermediate_size;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const LayerWeights& G = grads.layers[static_cast<size_t>(l)];
    check(p + "input_layernorm.weight", G.attn_norm, 0);
    check(p + "post_attention_layernorm.weight", G.mlp_norm, 0);
    check(p + "self_attn.q_proj.weight", G.wqkv, 0);
    check(p + "self_attn.k_proj.weight", G.wqkv, HD);
    check(p + "self_attn.v_proj.weight", G.wqkv, HD + KVD);
    check(p + "self_attn.o_proj.weight", G.wo, 0);
    check(p + "mlp.gate_proj.weight", G.w_gate_up, 0);
    check(p + "mlp.up_proj.weight", G.w_gate_up, I);
    check(p + "mlp.down_proj.weight", G.w_down, 0);
    if (cfg.qkv_bias) {
      check(p + "self_attn.q_proj.bias", G.bqkv, 0);
      check(p + "self_attn.k_proj.bias", G.bqkv, HD);
      check(p + "self_attn.v_proj.bias", G.bqkv, HD + KVD);
    }
    if (cfg.o_bias) check(p + "self_attn.o_proj.bias", G.bo, 0);
    if (cfg.mlp_bias) {
      check(p + "mlp.gate_proj.bias", G.b_gate_up, 0);
      check(p + "mlp.up_proj.bias", G.b_gate_up, I);
      check(p + "mlp.down_proj.bias", G.b_down, 0);
    }
    if (cfg.qk_norm) {
      check(p + "self_attn.q_norm.weight", G.q_norm, 0);
      check(p + "self_attn.k_norm.weight", G.k_norm, 0);
    }
  }
}

}  // namespace tl::reference_case
