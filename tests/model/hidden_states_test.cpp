// Model::hidden_states, the embedding entry point (semantic dedup in `tuneloop harvest` mean-pools it):
// on the PyTorch-written fixture checkpoints, hidden states times lm_head^T must reproduce forward()'s
// logits, the cache-appending form must agree with the one-shot form, and bad input fails as forward()
// does.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "model/model.h"

namespace tl {
namespace {

struct Loaded {
  Model model;
  std::vector<int32_t> ids;
};

Loaded load(const std::string& name) {
  const std::string dir = std::string(TL_FIXTURES_DIR) + "/models/" + name;
  auto model = Model::load(dir);
  EXPECT_TRUE(model.is_ok()) << model.status().message();
  auto text = read_file(dir + "/expected.json");
  EXPECT_TRUE(text.is_ok()) << dir;
  return Loaded{std::move(model).value(), nlohmann::json::parse(*text)["ids"].get<std::vector<int32_t>>()};
}

class HiddenStates : public ::testing::TestWithParam<std::string> {};

// Tied (lm_head is the embedding) and untied heads, with and without biases / qk-norm.
INSTANTIATE_TEST_SUITE_P(Fixtures, HiddenStates, ::testing::Values("qwen2_tied_f32", "llama_f32", "qwen3_f32"));

TEST_P(HiddenStates, TimesLmHeadGivesForwardLogits) {
  Loaded f = load(GetParam());
  ASSERT_FALSE(f.ids.empty());
  const ModelConfig& c = f.model.config();
  const int64_t T = static_cast<int64_t>(f.ids.size()), C = c.hidden_size, V = c.vocab_size;
  std::vector<float> hidden, logits;
  ASSERT_TRUE(f.model.hidden_states(f.ids, hidden).is_ok());
  ASSERT_EQ(hidden.size(), static_cast<size_t>(T * C));
  KvCache cache(c, T);
  ASSERT_TRUE(f.model.forward(f.ids, cache, logits, /*all_logits=*/true).is_ok());
  ASSERT_EQ(logits.size(), static_cast<size_t>(T * V));
  // Relative to the largest logit: the GEMM's f32 accumulation order differs from this double loop.
  const float* head = f.model.weights().lm_head.f32();
  double max_err = 0, max_logit = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t v = 0; v < V; ++v) {
      double acc = 0;
      for (int64_t i = 0; i < C; ++i)
        acc += static_cast<double>(hidden[static_cast<size_t>(t * C + i)]) * head[v * C + i];
      const double got = logits[static_cast<size_t>(t * V + v)];
      max_err = std::max(max_err, std::fabs(acc - got));
      max_logit = std::max(max_logit, std::fabs(got));
    }
  }
  ASSERT_GT(max_logit, 0.0);
  EXPECT_LE(max_err / max_logit, 1e-5) << "max abs error " << max_err << ", max |logit| " << max_logit;
}

TEST_P(HiddenStates, CacheAppendingMatchesOneShot) {
  Loaded f = load(GetParam());
  const int64_t T = static_cast<int64_t>(f.ids.size()), C = f.model.config().hidden_size;
  ASSERT_GE(T, 2);
  std::vector<float> whole, first, rest;
  ASSERT_TRUE(f.model.hidden_states(f.ids, whole).is_ok());
  KvCache cache(f.model.config(), T);
  const size_t half = static_cast<size_t>(T / 2);
  std::span<const int32_t> ids(f.ids);
  ASSERT_TRUE(f.model.hidden_states(ids.first(half), cache, first).is_ok());
  ASSERT_TRUE(f.model.hidden_states(ids.subspan(half), cache, rest).is_ok());
  EXPECT_EQ(cache.length(), T);
  first.insert(first.end(), rest.begin(), rest.end());
  ASSERT_EQ(first.size(), static_cast<size_t>(T * C));
  double max_err = 0;
  for (size_t i = 0; i < first.size(); ++i)
    max_err = std::max(max_err, static_cast<double>(std::fabs(first[i] - whole[i])));
  EXPECT_LE(max_err, 1e-4);
}

TEST(HiddenStatesErrors, SameAsForward) {
  Loaded f = load("qwen2_tied_f32");
  std::vector<float> out;
  Status empty = f.model.hidden_states(std::span<const int32_t>(), out);
  EXPECT_EQ(empty.code(), StatusCode::kInvalidArgument) << empty.message();
  const std::vector<int32_t> bad = {0, static_cast<int32_t>(f.model.config().vocab_size)};
  Status oov = f.model.hidden_states(bad, out);
  EXPECT_EQ(oov.code(), StatusCode::kOutOfRange) << oov.message();
  EXPECT_NE(oov.message().find("position 1"), std::string::npos) << oov.message();
  KvCache small(f.model.config(), 1);
  Status full = f.model.hidden_states(std::vector<int32_t>{0, 1}, small, out);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.message();
}

}  // namespace
}  // namespace tl
