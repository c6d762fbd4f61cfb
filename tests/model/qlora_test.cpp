// QLoRA: a model whose projections are stored as NF4 (and its embedding as bf16) gives exactly the loss
// and LoRA gradients of the f32 model holding the dequantised weights (the dequantisation happens inside
// each GEMM, block by block), and the f32 copies are gone.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "io/safetensors.h"
#include "model/peft.h"
#include "model/train_step.h"
#include "tensor/amx.h"
#include "tensor/nf4.h"

namespace tl {
namespace {

std::string dir_of(const std::string& name) { return std::string(TL_FIXTURES_DIR) + "/models/" + name; }

void dequantise_in_place(Tensor& t, bool double_quant) {
  Nf4Tensor q = nf4_quantize(t.f32(), t.numel(), double_quant);
  nf4_dequantize(t.f32(), q, 0, t.numel());
}

// The sequence both tests step on.
const TrainSequence& test_sequence() {
  static const TrainSequence seq =
      TrainSequence::single({1, 5, 9, 13, 17, 21, 25, 29}, {-1, -1, 9, 13, 17, 21, 25, -1});
  return seq;
}

// One LoRA step (r 4 on every target, B made non-zero so every gradient is) on `a` and on `b`: the same
// loss and gradients, bit for bit.
void expect_same_lora_step(const Model& a, const Model& b, const std::string& what) {
  LoraConfig cfg;
  cfg.r = 4;
  cfg.alpha = 8;
  for (int t = 0; t < kLoraTargetCount; ++t) cfg.targets.push_back(static_cast<LoraTarget>(t));
  auto lora = lora_init(a.config(), cfg, 9);
  ASSERT_TRUE(lora.is_ok());
  lora->for_each([](int64_t, LoraTarget, LoraModule& m) {
    for (int64_t i = 0; i < m.b.numel(); ++i) m.b.f32()[i] = 0.01f * static_cast<float>((i % 7) - 3);
  });
  LoraWeights g1 = lora->zeros_like(), g2 = lora->zeros_like();
  auto ra = forward_backward(a, {&*lora, &cfg}, &g1, nullptr, test_sequence(), 0.2f, TrainOptions());
  auto rb = forward_backward(b, {&*lora, &cfg}, &g2, nullptr, test_sequence(), 0.2f, TrainOptions());
  ASSERT_TRUE(ra.is_ok() && rb.is_ok());
  EXPECT_EQ(ra->loss_sum, rb->loss_sum) << what;
  std::vector<const LoraModule*> m2;
  g2.for_each([&](int64_t, LoraTarget, LoraModule& m) { m2.push_back(&m); });
  size_t k = 0;
  double moved = 0;
  g1.for_each([&](int64_t, LoraTarget, LoraModule& m) {
    for (int64_t i = 0; i < m.a.numel(); ++i) ASSERT_EQ(m.a.f32()[i], std::as_const(m2[k]->a).f32()[i]) << what;
    for (int64_t i = 0; i < m.b.numel(); ++i) ASSERT_EQ(m.b.f32()[i], std::as_const(m2[k]->b).f32()[i]) << what;
    for (int64_t i = 0; i < m.b.numel(); ++i) moved += std::fabs(m.b.f32()[i]);
    ++k;
  });
  EXPECT_GT(moved, 0) << what;
}

TEST(Qlora, EqualsLoraOnDequantisedWeights) {
  for (bool dq : {true, false}) {
    auto nf4_model = Model::load(dir_of("llama_f32"));
    auto ref_model = Model::load(dir_of("llama_f32"));
    ASSERT_TRUE(nf4_model.is_ok() && ref_model.is_ok());
    nf4_model->quantize_nf4(dq);
    for (LayerWeights& L : ref_model->mutable_weights().layers) {
      for (Tensor* t : {&L.wqkv, &L.wo, &L.w_gate_up, &L.w_down}) dequantise_in_place(*t, dq);
    }
    // The frozen embedding is kept in bf16 under QLoRA: the reference holds the same rounded values.
    ModelWeights& rw = ref_model->mutable_weights();
    for (int64_t i = 0; i < rw.embed.numel(); ++i) rw.embed.f32()[i] = bf16_to_f32(f32_to_bf16(rw.embed.f32()[i]));
    if (!ref_model->config().tie_word_embeddings)
      for (int64_t i = 0; i < rw.lm_head.numel(); ++i)
        rw.lm_head.f32()[i] = bf16_to_f32(f32_to_bf16(rw.lm_head.f32()[i]));
    // Frozen again, as the trainer holds a LoRA base: one packing, read by the forward and by dy W.
    ref_model->pack_matrices();
    ref_model->drop_row_major();
    EXPECT_EQ(nf4_model->weights().embed.dtype(), DType::kBF16);
    for (const LayerWeights& L : nf4_model->weights().layers) {
      EXPECT_TRUE(L.wqkv.empty() && L.w_down.empty());
      EXPECT_TRUE(L.nf4_wqkv && L.nf4_w_down);
    }
    ASSERT_NO_FATAL_FAILURE(expect_same_lora_step(*nf4_model, *ref_model, "double_quant=" + std::to_string(dq)));
    const TrainSequence& seq = test_sequence();
    // Inference through the NF4 model matches too.
    KvCache c1(nf4_model->config(), 16), c2(ref_model->config(), 16);
    std::vector<float> l1, l2;
    ASSERT_TRUE(nf4_model->forward(seq.tokens, c1, l1, true).is_ok());
    ASSERT_TRUE(ref_model->forward(seq.tokens, c2, l2, true).is_ok());
    EXPECT_EQ(l1, l2);
  }
}

// training.precision: bf16 on an NF4 base (QLoRA with bf16 compute): each dequantised block multiplied
// on AMX gives exactly the loss and LoRA gradients of the bf16 LoRA path on an f32 model holding the
// dequantised weights (and the bf16-rounded embedding), whose tiles are made whole at load.
TEST(Qlora, Bf16EqualsBf16LoraOnDequantisedWeights) {
  if (!bf16_tiles_available()) GTEST_SKIP() << bf16_tiles_unavailable_reason();
  for (const char* name : {"llama_f32", "qwen2_tied_f32"}) {
    auto nf4_model = Model::load(dir_of(name));
    auto ref_model = Model::load(dir_of(name));
    ASSERT_TRUE(nf4_model.is_ok() && ref_model.is_ok());
    nf4_model->quantize_nf4(true);
    ModelWeights& rw = ref_model->mutable_weights();
    for (LayerWeights& L : rw.layers)
      for (Tensor* t : {&L.wqkv, &L.wo, &L.w_gate_up, &L.w_down}) dequantise_in_place(*t, true);
    for (int64_t i = 0; i < rw.embed.numel(); ++i) rw.embed.f32()[i] = bf16_to_f32(f32_to_bf16(rw.embed.f32()[i]));
    if (!ref_model->config().tie_word_embeddings)
      for (int64_t i = 0; i < rw.lm_head.numel(); ++i)
        rw.lm_head.f32()[i] = bf16_to_f32(f32_to_bf16(rw.lm_head.f32()[i]));
    else
      rw.lm_head = rw.embed;
    ref_model->hold_matrices_bf16();
    nf4_model->hold_matrices_bf16();
    for (const LayerWeights& L : nf4_model->weights().layers) EXPECT_TRUE(L.blocks_on_amx && L.nf4_wqkv && !L.amx_wqkv);
    ASSERT_NO_FATAL_FAILURE(expect_same_lora_step(*nf4_model, *ref_model, name));
  }
}

TEST(Qlora, LoadNf4EqualsLoadThenQuantise) {
  auto a = Model::load_nf4(dir_of("qwen2_tied_f32"), true);
  auto b = Model::load(dir_of("qwen2_tied_f32"));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  b->quantize_nf4(true);
  std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  KvCache c1(a->config(), 8), c2(b->config(), 8);
  std::vector<float> l1, l2;
  ASSERT_TRUE(a->forward(ids, c1, l1, true).is_ok());
  ASSERT_TRUE(b->forward(ids, c2, l2, true).is_ok());
  EXPECT_EQ(l1, l2);
  for (const LayerWeights& L : a->weights().layers) EXPECT_TRUE(L.wqkv.empty() && L.nf4_wqkv);
}

}  // namespace
}  // namespace tl
