// The engine against PyTorch: tiny random checkpoints written by tests/reference/model_reference.py
// (every supported architecture and option; f32, bf16, f16; one sharded) must give the reference logits
// within 1e-4, incremental decoding must reproduce the full-sequence logits exactly (the issue asks 1e-5), and greedy
// generation must pick the reference's tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "model/model.h"
#include "tensor/amx.h"

namespace tl {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> cases() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(std::string(TL_FIXTURES_DIR) + "/models")) {
    if (e.is_directory()) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Fixture {
  Model model;
  std::vector<int32_t> ids;
  std::vector<int32_t> greedy_prompt, greedy;
  Tensor expected;  // (T, V)
};

Fixture load_fixture(const std::string& name) {
  const std::string dir = std::string(TL_FIXTURES_DIR) + "/models/" + name;
  auto model = Model::load(dir);
  EXPECT_TRUE(model.is_ok()) << model.status().message();
  auto text = read_file(dir + "/expected.json");
  EXPECT_TRUE(text.is_ok());
  auto j = nlohmann::json::parse(*text);
  auto file = safetensors::File::open(dir + "/expected_logits.safetensors");
  EXPECT_TRUE(file.is_ok());
  auto logits = file->tensor("logits");
  EXPECT_TRUE(logits.is_ok());
  return Fixture{std::move(model).value(), j["ids"].get<std::vector<int32_t>>(),
                 j["greedy_prompt"].get<std::vector<int32_t>>(), j["greedy"].get<std::vector<int32_t>>(),
                 logits->to_f32()};
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class ModelReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelReference, FullSequenceLogitsMatchPyTorch) {
  Fixture f = load_fixture(GetParam());
  const int64_t V = f.model.config().vocab_size;
  KvCache cache(f.model.config(), 64);
  std::vector<float> logits;
  ASSERT_TRUE(f.model.forward(f.ids, cache, logits, true).is_ok());
  ASSERT_EQ(static_cast<int64_t>(logits.size()), static_cast<int64_t>(f.ids.size()) * V);
  ASSERT_EQ(f.expected.numel(), static_cast<int64_t>(logits.size()));
  EXPECT_LE(max_abs_diff(logits.data(), f.expected.f32(), logits.size()), 1e-4f);
}

// Prefill and decoding run the same kernels per token (the packed GEMM's one-row path is the same FMA
// chain as its many-row path), so incremental decoding must reproduce the full-sequence logits bit for
// bit: the 1e-5 with nothing to spare.
TEST_P(ModelReference, IncrementalDecodingEqualsFullSequence) {
  Fixture f = load_fixture(GetParam());
  const int64_t V = f.model.config().vocab_size;
  KvCache full_cache(f.model.config(), 64);
  std::vector<float> full;
  ASSERT_TRUE(f.model.forward(f.ids, full_cache, full, true).is_ok());
  const float tol = 0.0f;
  KvCache cache(f.model.config(), 64);
  std::vector<float> step;
  float worst = 0;
  for (size_t t = 0; t < f.ids.size(); ++t) {
    ASSERT_TRUE(f.model.forward(std::span<const int32_t>(&f.ids[t], 1), cache, step, false).is_ok());
    worst = std::max(worst, max_abs_diff(step.data(), &full[t * V], static_cast<size_t>(V)));
  }
  EXPECT_LE(worst, tol);
  // A prefill in two chunks lands on the same logits too.
  KvCache chunked(f.model.config(), 64);
  std::vector<float> a, b;
  ASSERT_TRUE(f.model.forward(std::span<const int32_t>(f.ids.data(), 10), chunked, a, true).is_ok());
  ASSERT_TRUE(f.model.forward(std::span<const int32_t>(f.ids.data() + 10, f.ids.size() - 10), chunked, b, true).is_ok());
  EXPECT_LE(max_abs_diff(b.data(), &full[10 * V], b.size()), tol);
  // A prefill for the last token's logits alone runs only that row through the last layer's attention
  // and MLP, yet stores every row's K and V: the same logits, and a cache the next chunk can build on.
  KvCache last_only(f.model.config(), 64);
  const size_t T = f.ids.size();
  ASSERT_TRUE(f.model.forward(std::span<const int32_t>(f.ids.data(), 10), last_only, a, false).is_ok());
  ASSERT_EQ(static_cast<int64_t>(a.size()), V);
  EXPECT_LE(max_abs_diff(a.data(), &full[9 * V], a.size()), tol);
  ASSERT_TRUE(f.model.forward(std::span<const int32_t>(f.ids.data() + 10, T - 10), last_only, b, false).is_ok());
  EXPECT_LE(max_abs_diff(b.data(), &full[(T - 1) * V], b.size()), tol);
}

TEST_P(ModelReference, GreedyGenerationMatchesPyTorch) {
  Fixture f = load_fixture(GetParam());
  GenerateOptions opt;
  opt.max_tokens = static_cast<int32_t>(f.greedy.size());
  opt.stop_ids = {-1};  // the reference does not stop at EOS
  auto r = generate(f.model, f.greedy_prompt, opt);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->tokens, f.greedy);
}

// Inference holds each matrix once (packed), by drop_row_major() after load() or by load_packed() from
// the start, with the same logits bit for bit; whatever needs the row-major matrices again gets them back
// bit for bit, and the sgemm path they feed still matches the reference.
TEST_P(ModelReference, DroppingRowMajorCopiesKeepsLogitsAndWeights) {
  Fixture f = load_fixture(GetParam());
  const int64_t V = f.model.config().vocab_size;
  std::vector<float> before, after, unpacked;
  KvCache c1(f.model.config(), 64), c2(f.model.config(), 64), c3(f.model.config(), 64);
  ASSERT_TRUE(f.model.forward(f.ids, c1, before, true).is_ok());
  std::vector<std::vector<float>> saved;
  auto matrices = [](const ModelWeights& w, bool tied) {
    std::vector<const Tensor*> m;
    for (const LayerWeights& L : w.layers)
      for (const Tensor* t : {&L.wqkv, &L.wo, &L.w_gate_up, &L.w_down}) m.push_back(t);
    if (!tied) m.push_back(&w.lm_head);
    return m;
  };
  const bool tied = f.model.config().tie_word_embeddings;
  for (const Tensor* t : matrices(f.model.weights(), tied)) saved.emplace_back(t->f32(), t->f32() + t->numel());
  f.model.drop_row_major();
  for (const Tensor* t : matrices(f.model.weights(), tied)) EXPECT_TRUE(t->empty());
  ASSERT_TRUE(f.model.forward(f.ids, c2, after, true).is_ok());
  EXPECT_EQ(0.0f, max_abs_diff(before.data(), after.data(), before.size()));
  const ModelWeights& restored = f.model.mutable_weights();  // rebuilt from the packed copies
  size_t i = 0;
  for (const Tensor* t : matrices(restored, tied)) {
    ASSERT_EQ(static_cast<size_t>(t->numel()), saved[i].size());
    EXPECT_EQ(0, std::memcmp(t->f32(), saved[i].data(), saved[i].size() * 4)) << "matrix " << i;
    ++i;
  }
  ASSERT_TRUE(f.model.forward(f.ids, c3, unpacked, true).is_ok());  // now through sgemm
  ASSERT_EQ(static_cast<int64_t>(unpacked.size()), static_cast<int64_t>(f.ids.size()) * V);
  EXPECT_LE(max_abs_diff(unpacked.data(), f.expected.f32(), unpacked.size()), 1e-4f);
  // Each matrix held once, packed, whichever way the model got there: nothing row-major, the same bits.
  auto holds_packed_only_with_same_logits = [&](const Model& m) {
    for (const Tensor* t : matrices(m.weights(), tied)) EXPECT_TRUE(t->empty());
    std::vector<float> out;
    KvCache cache(m.config(), 64);
    ASSERT_TRUE(m.forward(f.ids, cache, out, true).is_ok());
    ASSERT_EQ(out.size(), before.size());
    EXPECT_EQ(0, std::memcmp(out.data(), before.data(), before.size() * 4));
  };
  const std::string dir = std::string(TL_FIXTURES_DIR) + "/models/" + GetParam();
  // Packed from the start.
  auto packed = Model::load_packed(dir);
  ASSERT_TRUE(packed.is_ok()) << packed.status().message();
  holds_packed_only_with_same_logits(*packed);
  // Loaded unpacked (what merging an adapter starts from): drop_row_major packs each matrix as it frees it.
  auto unpacked_load = Model::load_unpacked(dir);
  ASSERT_TRUE(unpacked_load.is_ok()) << unpacked_load.status().message();
  EXPECT_EQ(unpacked_load->weights().layers[0].packed_wqkv, nullptr);
  unpacked_load->drop_row_major();
  holds_packed_only_with_same_logits(*unpacked_load);
}

// bf16 tiles (training.precision: bf16) whichever way the model got there: loaded as tiles layer by
// layer, or held as tiles after a full f32 load, the same bits in the logits, no f32 matrix left; the
// logits within bf16's reach of PyTorch's f32 ones (a wrong tile would be off by the logits' scale).
TEST_P(ModelReference, Bf16TilesLoadedOrConvertedGiveTheSameLogits) {
  if (!bf16_tiles_available()) GTEST_SKIP() << bf16_tiles_unavailable_reason();
  Fixture f = load_fixture(GetParam());
  const std::string dir = std::string(TL_FIXTURES_DIR) + "/models/" + GetParam();
  auto tiles = Model::load_bf16(dir);
  ASSERT_TRUE(tiles.is_ok()) << tiles.status().message();
  f.model.hold_matrices_bf16();
  std::vector<float> a, b;
  KvCache c1(f.model.config(), 64), c2(f.model.config(), 64);
  ASSERT_TRUE(f.model.forward(f.ids, c1, a, true).is_ok());
  ASSERT_TRUE(tiles->forward(f.ids, c2, b, true).is_ok());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  for (const LayerWeights& L : tiles->weights().layers) {
    EXPECT_TRUE(L.wqkv.empty() && L.wo.empty() && L.w_gate_up.empty() && L.w_down.empty());
    EXPECT_TRUE(!L.packed_wqkv && !L.packed_wo && !L.packed_w_gate_up && !L.packed_w_down);
  }
  float scale = 0;
  for (int64_t i = 0; i < f.expected.numel(); ++i) scale = std::max(scale, std::fabs(f.expected.f32()[i]));
  const float err = max_abs_diff(b.data(), f.expected.f32(), b.size());
  EXPECT_LE(err, 0.05f * scale) << "scale " << scale;
  EXPECT_GT(err, 1e-5f * scale) << "bf16 was not used";
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ModelReference, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return p.param; });

TEST(ModelReferenceSet, CoversEveryOption) {
  // Guards against the reference script silently writing fewer cases.
  EXPECT_EQ(cases().size(), 8u);
}

}  // namespace
}  // namespace tl
