// DPO against PyTorch autograd (tests/reference/train_reference.py): two preference pairs, the
// reference's adapter as the policy and the base without it as the reference, for each loss type: the
// mean pair loss and every LoRA gradient; and full-parameter DPO, every weight's gradient. Each pair is
// one packed sequence (chosen, then rejected), as the trainer runs it; the reference runs every example on
// its own.
#include "train/dpo.h"

#include <gtest/gtest.h>

#include <cmath>

#include "../model/reference_case.h"
#include "model/merge.h"
#include "model/train_step.h"

namespace tl {
namespace {

using namespace reference_case;

struct DpoCase {
  std::string model;
  std::string loss;
};

void PrintTo(const DpoCase& c, std::ostream* os) { *os << c.model << " " << c.loss; }

class DpoReference : public ::testing::TestWithParam<DpoCase> {};

// The reference's two pairs as a DpoSet: one sequence per pair (chosen, then rejected), or with `packed`
// both pairs in one sequence (chosen 0, rejected 0, chosen 1, rejected 1), the layout dpo_set gives with
// packing.
DpoSet fixture_set(const Case& c, bool packed) {
  const nlohmann::json& d = c.meta["dpo"];
  DpoSet set;
  for (const auto& pair : d["pairs"]) {
    if (!packed || set.seqs.empty()) {
      set.seqs.emplace_back();
      set.seq_pairs.emplace_back();
    }
    DpoPairInput in;
    for (int side = 0; side < 2; ++side) {
      const auto& e = d["examples"][pair[side].get<size_t>()];
      const auto targets = e["targets"].get<std::vector<int32_t>>();
      set.seqs.back().append(e["tokens"].get<std::vector<int32_t>>(), targets);
      (side == 0 ? in.chosen_tokens : in.rejected_tokens) = std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
    }
    set.seq_pairs.back().push_back(static_cast<int64_t>(set.inputs.size()));
    set.inputs.push_back(in);
  }
  return set;
}

// The fixture's pairs, scored against `reference` (no adapter) and run through forward_backward with
// `policy` (its adapter when lora_grads is set, its own weights when full_grads is), each sequence's
// example scales from pair_scales, as the trainer runs them. Returns the pairs' terms.
DpoTotals run_pairs(const Case& c, const Model& reference, const Model& policy, LoraRef lora, LoraWeights* lora_grads,
                    ModelWeights* full_grads, DpoLossType type, bool checkpointing, bool packed = false) {
  DpoSet set = fixture_set(c, packed);
  DpoTotals totals;
  const Status scored = score_reference(reference, &set);
  EXPECT_TRUE(scored.is_ok()) << scored.message();
  if (!scored.is_ok()) return totals;
  const double beta = c.meta["dpo"]["beta"].get<double>(), pairs = static_cast<double>(set.inputs.size());
  for (size_t i = 0; i < set.seqs.size(); ++i) {
    const ExampleScales scales = [&](const std::vector<double>& losses) {
      return pair_scales(set, i, losses, type, beta, pairs, &totals);
    };
    TrainOptions opt;
    opt.gradient_checkpointing = checkpointing;
    auto st = forward_backward(policy, lora, lora_grads, full_grads, set.seqs[i], scales, opt);
    EXPECT_TRUE(st.is_ok()) << st.status().message();
  }
  return totals;
}

TEST_P(DpoReference, LossAndLoraGradientsMatchAutograd) {
  const DpoCase& p = GetParam();
  Case c = load_case(p.model);
  auto adapter = reference_lora(c, p.model);
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  auto type = dpo_loss_from_name(p.loss);
  ASSERT_TRUE(type.is_ok());
  for (bool checkpointing : {false, true}) {
    LoraWeights grads = adapter->weights.zeros_like();
    const DpoTotals t = run_pairs(c, c.model, c.model, {&adapter->weights, &adapter->config}, &grads, nullptr, *type,
                                  checkpointing);
    const double loss = t.mean(t.loss);
    const double expected = c.meta["dpo"]["loss"][p.loss].get<double>();
    EXPECT_NEAR(loss, expected, 1e-5 * std::max(1.0, std::fabs(expected)));
    expect_lora_grads_match(grads, p.model, " dpo " + p.loss + (checkpointing ? " (checkpointing)" : ""),
                            "expected_dpo_" + p.loss + "_grads.safetensors");
  }
}

// Packing: both pairs in one sequence: the same loss and LoRA gradients as autograd's, which runs every
// example on its own.
TEST_P(DpoReference, PackedPairsMatchAutograd) {
  const DpoCase& p = GetParam();
  Case c = load_case(p.model);
  auto adapter = reference_lora(c, p.model);
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  auto type = dpo_loss_from_name(p.loss);
  ASSERT_TRUE(type.is_ok());
  LoraWeights grads = adapter->weights.zeros_like();
  const DpoTotals totals = run_pairs(c, c.model, c.model, {&adapter->weights, &adapter->config}, &grads, nullptr, *type,
                                     false, true);
  ASSERT_EQ(totals.pairs, 2);
  const double expected = c.meta["dpo"]["loss"][p.loss].get<double>();
  EXPECT_NEAR(totals.mean(totals.loss), expected, 1e-5 * std::max(1.0, std::fabs(expected)));
  expect_lora_grads_match(grads, p.model, " packed dpo " + p.loss, "expected_dpo_" + p.loss + "_grads.safetensors");
}

// Full-parameter DPO (dpo.adapter: full): the policy is the base with the reference's adapter merged into
// its weights, the reference the base. Its loss is the adapter's sigmoid loss (the same policy), and every
// weight's gradient matches autograd's.
class DpoFullReference : public ::testing::TestWithParam<std::string> {};

TEST_P(DpoFullReference, LossAndWeightGradientsMatchAutograd) {
  Case c = load_case(GetParam());
  auto adapter = reference_lora(c, GetParam());
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().message();
  auto policy = Model::load(dir_of(GetParam()));
  ASSERT_TRUE(policy.is_ok()) << policy.status().message();
  ASSERT_TRUE(merge_lora(*policy, adapter->weights, adapter->config).is_ok());
  const ModelConfig& cfg = policy->config();
  for (bool checkpointing : {false, true}) {
    ModelWeights grads = model_zeros_like(policy->weights(), cfg.tie_word_embeddings);
    const DpoTotals t = run_pairs(c, c.model, *policy, LoraRef{}, nullptr, &grads, DpoLossType::kSigmoid, checkpointing);
    const double loss = t.mean(t.loss);
    const double expected = c.meta["dpo"]["full_sigmoid_loss"].get<double>();
    EXPECT_NEAR(loss, expected, 1e-5 * std::max(1.0, std::fabs(expected)));
    EXPECT_NEAR(loss, c.meta["dpo"]["loss"]["sigmoid"].get<double>(), 1e-5);
    expect_full_grads_match(grads, cfg, GetParam(), "expected_dpo_full_grads.safetensors",
                            checkpointing ? " (checkpointing)" : "");
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, DpoFullReference, ::testing::ValuesIn(kCases),
                         [](const auto& p) { return p.param; });

std::vector<DpoCase> all_cases() {
  std::vector<DpoCase> out;
  for (const std::string& m : kCases)
    for (const char* l : {"sigmoid", "hinge", "ipo"}) out.push_back({m, l});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Reference, DpoReference, ::testing::ValuesIn(all_cases()),
                         [](const auto& p) { return p.param.model + "_" + p.param.loss; });

// The sigmoid loss stays finite far from the decision boundary, where log(sigmoid(z)) computed directly
// would give log(0) = -inf (z = -1000) or lose the tail (z = +40).
TEST(DpoLoss, SigmoidIsFiniteFarFromTheBoundary) {
  DpoPairInput in;
  in.policy_rejected_loss = 10000;  // h = +10000, beta h = +1000
  DpoPairTerms t = dpo_pair(DpoLossType::kSigmoid, 0.1, in);
  EXPECT_EQ(t.loss, 0.0);
  EXPECT_EQ(t.scale_chosen, 0.0);
  in.policy_rejected_loss = -10000;  // beta h = -1000
  t = dpo_pair(DpoLossType::kSigmoid, 0.1, in);
  EXPECT_DOUBLE_EQ(t.loss, 1000.0);
  EXPECT_DOUBLE_EQ(t.scale_chosen, 0.1);
  in.policy_rejected_loss = 400;  // beta h = 40: -log sigmoid(40) = log1p(e^-40) ~ 4.25e-18
  t = dpo_pair(DpoLossType::kSigmoid, 0.1, in);
  EXPECT_NEAR(t.loss, std::exp(-40.0), 1e-30);
}

TEST(DpoLoss, UnknownTypeIsAnError) {
  auto r = dpo_loss_from_name("kto");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "unknown DPO loss 'kto' (expected sigmoid, hinge or ipo)");
}

}  // namespace
}  // namespace tl
