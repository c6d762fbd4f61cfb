// The manual backward against PyTorch autograd (tests/reference/train_reference.py): loss and every
// LoRA gradient, every base-weight gradient for full fine-tuning, with the two reference examples packed
// into one sequence (the reference runs them one by one, so this is also packed == unpacked).
#include "model/train_step.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <utility>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "io/safetensors.h"
#include "model/peft.h"
#include "reference_case.h"
#include "run_command.h"
#include "tensor/amx.h"

namespace tl {
namespace {

using namespace reference_case;

// One LoRA forward/backward over seq whose loss, averaged over its n trainable tokens, must be the
// reference's; returns the gradients.
LoraWeights lora_step(const Case& c, const LoraWeights& w, const LoraConfig& cfg, const TrainSequence& seq, int64_t n,
                      const TrainOptions& opt = TrainOptions(), const std::string& what = "") {
  LoraWeights grads = w.zeros_like();
  auto st = forward_backward(c.model, {&w, &cfg}, &grads, nullptr, seq, 1.0f / static_cast<float>(n), opt);
  EXPECT_TRUE(st.is_ok()) << st.status().message() << what;
  if (!st.is_ok()) return grads;
  EXPECT_EQ(st->tokens, n) << what;
  EXPECT_NEAR(st->loss_sum / static_cast<double>(n), c.meta["loss"].get<double>(), 1e-5) << what;
  return grads;
}

class TrainStep : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainStep, LoraGradientsMatchAutograd) {
  Case c = load_case(GetParam());
  auto adapter = reference_lora(c, GetParam());
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  const int64_t n = c.meta["tokens"].get<int64_t>();
  for (bool checkpointing : {false, true}) {
    TrainOptions opt;
    opt.gradient_checkpointing = checkpointing;
    const std::string what = checkpointing ? " (checkpointing)" : "";
    LoraWeights grads = lora_step(c, adapter->weights, adapter->config, c.seq, n, opt, what);
    const double worst = expect_lora_grads_match(grads, GetParam(), what);
    RecordProperty(checkpointing ? "worst_rel_error_checkpointing" : "worst_rel_error", std::to_string(worst));
  }
}

// training.precision: bf16 (the frozen matrices as bf16 on AMX, f32 sums; attention's products in bf16)
// against PyTorch's mixed precision (torch.autocast("cpu", bfloat16)) from the same init: both are
// measured against the f32 autograd gradients, and ours must be of the same order as PyTorch's -- its
// worst tensor within twice autocast's worst, and the loss within 2^-6 (relative) of f32, where
// autocast's own lands (up to 1.1e-2 on these models). bf16 rounding is noise, so one model's draw can
// fall either side of PyTorch's (measured: 0.43x to 1.04x its worst gradient error); a missed rounding
// step or a wrong tile lands orders of magnitude out. The distance must also be far above f32 rounding:
// the bf16 path really ran.
TEST_P(TrainStep, Bf16GradientsAreOfAutocastsOrder) {
  if (!bf16_tiles_available()) GTEST_SKIP() << bf16_tiles_unavailable_reason();
  Case c = load_case(GetParam());
  c.model.hold_matrices_bf16();
  auto adapter = reference_lora(c, GetParam());
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  auto f32 = safetensors::File::open(dir_of(GetParam()) + "/expected_lora_grads.safetensors");
  auto ac = safetensors::File::open(dir_of(GetParam()) + "/expected_lora_grads_autocast_bf16.safetensors");
  ASSERT_TRUE(f32.is_ok() && ac.is_ok());
  const int64_t n = c.meta["tokens"].get<int64_t>();
  const double loss32 = c.meta["loss"].get<double>(), loss_ac = c.meta["autocast_bf16_loss"].get<double>();
  for (bool checkpointing : {false, true}) {
    const std::string what = checkpointing ? " (checkpointing)" : "";
    TrainOptions opt;
    opt.gradient_checkpointing = checkpointing;
    LoraWeights grads = adapter->weights.zeros_like();
    auto st = forward_backward(c.model, {&adapter->weights, &adapter->config}, &grads, nullptr, c.seq,
                               1.0f / static_cast<float>(n), opt);
    ASSERT_TRUE(st.is_ok()) << st.status().message();
    const double loss = st->loss_sum / static_cast<double>(n);
    EXPECT_LE(std::fabs(loss - loss32), std::ldexp(loss32, -6)) << "ours " << loss << ", f32 " << loss32 << what;
    double worst = 0, worst_ac = 0;
    grads.for_each([&](int64_t l, LoraTarget t, LoraModule& m) {
      for (bool is_a : {true, false}) {
        const std::string name = peft::tensor_name(l, t, is_a);
        auto e = f32->tensor(name), a = ac->tensor(name);
        ASSERT_TRUE(e.is_ok() && a.is_ok()) << name;
        const Tensor& got = is_a ? m.a : m.b;
        const Tensor torch_ac = a->to_f32();
        worst = std::max(worst, rel_error(got, std::as_const(*e).f32(), got.numel()));
        worst_ac = std::max(worst_ac, rel_error(torch_ac, std::as_const(*e).f32(), got.numel()));
      }
    });
    EXPECT_LE(worst, 2 * worst_ac) << what;
    EXPECT_GT(worst, 1e-4) << what;
    std::printf("%s%s: worst relative gradient error vs f32: ours (bf16) %.2e, autocast %.2e; loss error %.2e vs %.2e\n",
                GetParam().c_str(), what.c_str(), worst, worst_ac, std::fabs(loss - loss32), std::fabs(loss_ac - loss32));
  }
}

// Without dropout the q/k/v and gate/up targets share their GEMMs (stacked A); with dropout each target
// has its own mask and runs alone. A negligible rate (no element is ever dropped, keep scale rounds to
// 1) takes the one-target path on the same math, so it must match autograd too.
TEST_P(TrainStep, PerTargetDropoutPathMatchesAutograd) {
  Case c = load_case(GetParam());
  auto adapter = reference_lora(c, GetParam());
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  adapter->config.dropout = 1e-12;
  LoraWeights grads = lora_step(c, adapter->weights, adapter->config, c.seq, c.meta["tokens"].get<int64_t>());
  expect_lora_grads_match(grads, GetParam());
}

// Ten copies of each of the two reference examples packed into one 160-token sequence, with the loss
// averaged over all of them, have the reference's gradients (the mean over identical copies). At this
// length the rows span several of the trainer's row blocks (LoRA B gradients are summed over their
// partials) and attention query blocks; all copies of the first example come first, so blocks start
// inside an example and attend to keys of the block before.
TEST_P(TrainStep, LongPackedSequenceOfCopiesMatchesAutograd) {
  Case c = load_case(GetParam());
  auto adapter = reference_lora(c, GetParam());
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  constexpr int kCopies = 10;
  TrainSequence seq;
  for (const auto& ex : c.meta["examples"])
    for (int i = 0; i < kCopies; ++i)
      seq.append(ex["tokens"].get<std::vector<int32_t>>(), ex["targets"].get<std::vector<int32_t>>());
  ASSERT_GT(seq.size(), 128);
  LoraWeights grads =
      lora_step(c, adapter->weights, adapter->config, seq, kCopies * c.meta["tokens"].get<int64_t>());
  expect_lora_grads_match(grads, GetParam());
}

// The reference's rank-4 adapter padded with zero rows of A and columns of B to a larger rank (alpha
// scaled with it, so the scaling is the same) computes the same function, so its gradients are the
// reference's in the leading block and zero elsewhere. Rank 20 takes the one-pass LoRA kernel with a
// partial vector, rank 40 the two-GEMM path above kOnePassMaxRank.
TEST_P(TrainStep, ZeroPaddedRanksHaveTheReferenceGradients) {
  Case c = load_case(GetParam());
  auto adapter = reference_lora(c, GetParam());
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  const int64_t r0 = adapter->config.r, n = c.meta["tokens"].get<int64_t>();
  auto expected = safetensors::File::open(dir_of(GetParam()) + "/expected_lora_grads.safetensors");
  ASSERT_TRUE(expected.is_ok());
  for (int64_t r : {20, 40}) {
    LoraConfig cfg = adapter->config;
    cfg.r = r;
    cfg.alpha = adapter->config.alpha * static_cast<double>(r) / static_cast<double>(r0);
    LoraWeights w = adapter->weights;
    w.for_each([&](int64_t l, LoraTarget t, LoraModule& m) {
      const LoraModule& small = adapter->weights.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      const int64_t in = small.a.dim(1), out = small.b.dim(0);
      m.a = Tensor::zeros(DType::kF32, {r, in});
      m.b = Tensor::zeros(DType::kF32, {out, r});
      std::copy(small.a.f32(), small.a.f32() + r0 * in, m.a.f32());
      for (int64_t o = 0; o < out; ++o) std::copy(small.b.f32() + o * r0, small.b.f32() + (o + 1) * r0, m.b.f32() + o * r);
    });
    LoraWeights grads = lora_step(c, w, cfg, c.seq, n, TrainOptions(), " r " + std::to_string(r));
    grads.for_each([&](int64_t l, LoraTarget t, LoraModule& g) {
      for (bool is_a : {true, false}) {
        auto e = expected->tensor(peft::tensor_name(l, t, is_a));
        ASSERT_TRUE(e.is_ok());
        const Tensor& got = is_a ? g.a : g.b;
        // The leading block (A's first r0 rows, B's first r0 columns) as a dense tensor.
        Tensor lead = Tensor::zeros(DType::kF32, e->shape());
        const int64_t rows = got.dim(0), cols = got.dim(1);
        double stray = 0;
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j) {
            const float v = got.f32()[i * cols + j];
            const bool in_lead = is_a ? i < r0 : j < r0;
            if (in_lead) lead.f32()[is_a ? i * cols + j : i * r0 + j] = v;
            else stray = std::max(stray, static_cast<double>(std::fabs(v)));
          }
        EXPECT_LE(rel_error(lead, std::as_const(*e).f32(), lead.numel()), 1e-4)
            << peft::tensor_name(l, t, is_a) << " r " << r;
        EXPECT_EQ(stray, 0.0) << peft::tensor_name(l, t, is_a) << " r " << r;
      }
    });
  }
}

TEST_P(TrainStep, FullGradientsMatchAutograd) {
  Case c = load_case(GetParam());
  const ModelConfig& cfg = c.model.config();
  ModelWeights grads = model_zeros_like(c.model.weights(), cfg.tie_word_embeddings);
  const int64_t n = c.meta["tokens"].get<int64_t>();
  auto st = forward_backward(c.model, {}, nullptr, &grads, c.seq, 1.0f / static_cast<float>(n), TrainOptions());
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  EXPECT_NEAR(st->loss_sum / static_cast<double>(n), c.meta["full_loss"].get<double>(), 1e-5);
  expect_full_grads_match(grads, cfg, GetParam(), "expected_full_grads.safetensors");
}

TEST_P(TrainStep, PeftRoundTrip) {
  Case c = load_case(GetParam());
  auto adapter = reference_lora(c, GetParam());
  ASSERT_TRUE(adapter.is_ok());
  const std::string out = ::testing::TempDir() + "/peft_" + GetParam();
  ASSERT_TRUE(peft::save(out, adapter->weights, adapter->config, dir_of(GetParam())).is_ok());
  auto back = peft::load(out, c.model.config());
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->config.r, adapter->config.r);
  EXPECT_EQ(back->config.targets.size(), 7u);
  auto l1 = sequence_loss(c.model, {&adapter->weights, &adapter->config}, c.seq);
  auto l2 = sequence_loss(c.model, {&back->weights, &back->config}, c.seq);
  ASSERT_TRUE(l1.is_ok() && l2.is_ok());
  EXPECT_EQ(l1->loss_sum, l2->loss_sum);
  // The reference reads the files we wrote with PEFT semantics and gets the same loss.
  const std::string cmd = "/usr/bin/python3 " + std::string(TL_SOURCE_DIR) + "/tests/reference/peft_loss_reference.py " +
                          dir_of(GetParam()) + " " + out + " " + dir_of(GetParam()) + "/train_case.json";
  const auto [code, text] = test::run_command(cmd);
  ASSERT_EQ(code, 0) << text;
  auto j = nlohmann::json::parse(text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << text;
  EXPECT_EQ(j["modules"].get<int>(), 7 * c.model.config().num_layers);
  EXPECT_NEAR(j["loss"].get<double>(), l1->loss_sum / static_cast<double>(l1->tokens), 1e-5) << text;
  // A config cut short is reported as such, with the place the parser stopped.
  auto cfg = tl::read_file(out + "/adapter_config.json");
  ASSERT_TRUE(cfg.is_ok());
  ASSERT_TRUE(tl::write_file_atomic(out + "/adapter_config.json", cfg->substr(0, cfg->size() / 2)).is_ok());
  auto cut = peft::load(out, c.model.config());
  ASSERT_FALSE(cut.is_ok());
  EXPECT_EQ(cut.status().message().rfind(out + "/adapter_config.json: invalid JSON (line ", 0), 0u)
      << cut.status().message();
}

INSTANTIATE_TEST_SUITE_P(Reference, TrainStep, ::testing::ValuesIn(kCases), [](const auto& p) { return p.param; });

}  // namespace
}  // namespace tl
