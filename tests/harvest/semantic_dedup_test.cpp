// Semantic dedup with a fake, deterministic embedder: exact survivors and removals (greedy by quality,
// pairing with the most similar kept item, cosine on normalised vectors), only dedup()'s survivors
// embedded, zero vectors kept, errors named; then harvest() on the mini_repo fixture with a two-cluster
// embedder, where exactly the best function of each cluster must survive and report.json must list the
// rest.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/file.h"
#include "harvest/harvest.h"

namespace tl::harvest {
namespace {

namespace fs = std::filesystem;

// Each text names its vector; unknown text is a test bug.
EmbedFn table_embedder(std::map<std::string, std::vector<float>> table, std::vector<std::string>* calls = nullptr) {
  return [table = std::move(table), calls](const std::string& text) -> Result<std::vector<float>> {
    if (calls) calls->push_back(text);
    auto it = table.find(text);
    if (it == table.end()) return not_found("no vector for '{}'", text);
    return it->second;
  };
}

DedupResult all_kept(size_t n) {
  DedupResult r;
  for (size_t i = 0; i < n; ++i) r.kept.push_back(i);
  return r;
}

TEST(SemanticDedupTest, GreedyByQualityWithCosines) {
  // Visiting order by quality: a (.9), c (.7), e (.6), b (.5), d (.3).
  std::vector<DedupItem> items = {{"a", 0.9}, {"b", 0.5}, {"c", 0.7}, {"d", 0.3}, {"e", 0.6}};
  DedupOptions o;
  o.embed = table_embedder({{"a", {1, 0, 0}},
                            {"b", {90, 10, 0}},     // cos(a) = 0.9939: removed for a (scale must not matter)
                            {"c", {0, 1, 0}},       // cos(a) = 0: kept
                            {"d", {0.6f, 0.8f, 0}}, // cos(a) = 0.6, cos(c) = 0.8: below 0.85, kept
                            {"e", {0.05f, 1, 0}}}); // cos(c) = 0.9988: removed for c
  DedupResult r = all_kept(items.size());
  std::vector<std::pair<int64_t, int64_t>> progress;
  ASSERT_TRUE(semantic_dedup(items, o, r, [&](int64_t d, int64_t t) { progress.emplace_back(d, t); }).is_ok());
  EXPECT_EQ(r.kept, (std::vector<size_t>{0, 2, 3}));
  ASSERT_EQ(r.removals.size(), 2u);
  EXPECT_EQ(r.removals[0].removed, 4u);  // e is visited before b
  EXPECT_EQ(r.removals[0].kept, 2u);
  EXPECT_EQ(r.removals[0].reason, "semantic");
  EXPECT_NEAR(r.removals[0].similarity, 1.0 / std::sqrt(1.0025), 1e-6);
  EXPECT_EQ(r.removals[1].removed, 1u);
  EXPECT_EQ(r.removals[1].kept, 0u);
  EXPECT_NEAR(r.removals[1].similarity, 90.0 / std::sqrt(8200.0), 1e-6);
  ASSERT_EQ(progress.size(), 5u);
  EXPECT_EQ(progress.back(), (std::pair<int64_t, int64_t>{5, 5}));
}

TEST(SemanticDedupTest, PairsWithTheMostSimilarKeptItemAndHonoursThreshold) {
  // x and y are orthogonal and both kept; z is above the threshold against both and pairs with y, the
  // closer one (not x, the first kept).
  std::vector<DedupItem> items = {{"x", 0.9}, {"y", 0.8}, {"z", 0.1}};
  DedupOptions o;
  o.embed = table_embedder({{"x", {1, 0, 0}}, {"y", {0, 1, 0}}, {"z", {0.3f, 0.95f, 0}}});
  o.semantic_threshold = 0.3;  // cos(z, x) = 0.301, cos(z, y) = 0.954: both match, y is closer
  DedupResult r = all_kept(items.size());
  ASSERT_TRUE(semantic_dedup(items, o, r, nullptr).is_ok());
  EXPECT_EQ(r.kept, (std::vector<size_t>{0, 1}));
  ASSERT_EQ(r.removals.size(), 1u);
  EXPECT_EQ(r.removals[0].kept, 1u);
  // A threshold above the pair's cosine keeps everything.
  o.semantic_threshold = 0.96;
  DedupResult r2 = all_kept(items.size());
  ASSERT_TRUE(semantic_dedup(items, o, r2, nullptr).is_ok());
  EXPECT_EQ(r2.kept, (std::vector<size_t>{0, 1, 2}));
  EXPECT_TRUE(r2.removals.empty());
}

TEST(SemanticDedupTest, OnlyDedupSurvivorsAreEmbeddedAndEqualQualityKeepsTheEarlier) {
  // Items 0 and 1 are exact duplicates: dedup() drops 1, so the semantic pass never embeds it.
  std::vector<DedupItem> items = {{"def f(x):\n  return x + 1\n", 0.5},
                                  {"def f(x):\n    return x + 1\n", 0.4},
                                  {"def g(y):\n  return y + 1\n", 0.5}};
  DedupOptions o;
  std::vector<std::string> calls;
  o.embed = table_embedder({{items[0].text, {1, 1}}, {items[2].text, {1, 1.01f}}}, &calls);
  DedupResult r = dedup(items, o);
  ASSERT_EQ(r.kept, (std::vector<size_t>{0, 2}));
  ASSERT_TRUE(semantic_dedup(items, o, r, nullptr).is_ok());
  EXPECT_EQ(calls, (std::vector<std::string>{items[0].text, items[2].text}));
  EXPECT_EQ(r.kept, std::vector<size_t>{0});
  ASSERT_EQ(r.removals.size(), 2u);
  EXPECT_EQ(r.removals[0].reason, "exact");
  EXPECT_EQ(r.removals[1].reason, "semantic");
  EXPECT_EQ(r.removals[1].removed, 2u);
  EXPECT_EQ(r.removals[1].kept, 0u);
}

TEST(SemanticDedupTest, ZeroVectorsAreKeptAndNeverMatch) {
  std::vector<DedupItem> items = {{"a", 0.9}, {"z1", 0.8}, {"z2", 0.7}};
  DedupOptions o;
  o.embed = table_embedder({{"a", {1, 0}}, {"z1", {0, 0}}, {"z2", {0, 0}}});
  DedupResult r = all_kept(items.size());
  ASSERT_TRUE(semantic_dedup(items, o, r, nullptr).is_ok());
  EXPECT_EQ(r.kept, (std::vector<size_t>{0, 1, 2}));
  EXPECT_TRUE(r.removals.empty());
}

TEST(SemanticDedupTest, WithoutEmbedderNothingHappens) {
  std::vector<DedupItem> items = {{"a", 0.9}, {"a", 0.8}};
  DedupResult r = all_kept(items.size());
  ASSERT_TRUE(semantic_dedup(items, DedupOptions{}, r, nullptr).is_ok());
  EXPECT_EQ(r.kept, (std::vector<size_t>{0, 1}));
}

TEST(SemanticDedupTest, ErrorsNameTheItem) {
  std::vector<DedupItem> items = {{"first\nbody", 0.9}, {"second\nbody", 0.8}};
  DedupOptions o;
  o.embed = table_embedder({{"first\nbody", {1, 0}}, {"second\nbody", {1, 0, 0}}});
  DedupResult r = all_kept(items.size());
  Status dim = semantic_dedup(items, o, r, nullptr);
  EXPECT_EQ(dim.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dim.message().find("item 1 ('second')"), std::string::npos) << dim.message();
  EXPECT_NE(dim.message().find("dimension 3, expected 2"), std::string::npos) << dim.message();

  o.embed = table_embedder({{"first\nbody", {1, 0}}});  // no vector for the second: the embedder's error
  r = all_kept(items.size());
  Status missing = semantic_dedup(items, o, r, nullptr);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("semantic dedup: embedding item 1"), std::string::npos) << missing.message();

  o.embed = table_embedder({{"first\nbody", {1, NAN}}});
  r = all_kept(items.size());
  Status nan = semantic_dedup(items, o, r, nullptr);
  EXPECT_EQ(nan.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(nan.message().find("non-finite"), std::string::npos) << nan.message();

  o.embed = table_embedder({{"first\nbody", {}}});
  r = all_kept(items.size());
  Status empty = semantic_dedup(items, o, r, nullptr);
  EXPECT_EQ(empty.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.message().find("is empty"), std::string::npos) << empty.message();
}

TEST(SemanticDedupTest, DotMatchesNaive) {
  for (size_t n : {0u, 1u, 15u, 16u, 37u, 896u}) {
    std::vector<float> a(n), b(n);
    double ref = 0;
    for (size_t i = 0; i < n; ++i) {
      a[i] = std::sin(static_cast<float>(i) * 0.37f);
      b[i] = std::cos(static_cast<float>(i) * 0.11f);
      ref += static_cast<double>(a[i]) * b[i];
    }
    EXPECT_NEAR(dot_f32(a.data(), b.data(), n), ref, 1e-4) << n;
  }
}

TEST(SemanticDedupTest, ConfigKeys) {
  auto ok = parse_harvest_config(R"({"dedup": {"semantic_threshold": 0.9, "embed_max_tokens": 128}})", "h.json");
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_EQ(ok->dedup.semantic_threshold, 0.9);
  EXPECT_EQ(ok->dedup.embed_max_tokens, 128);
  auto bad = parse_harvest_config(R"({"dedup": {"semantic_threshold": 1.5}})", "h.json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("dedup.semantic_threshold must be in (0, 1]"), std::string::npos)
      << bad.status().message();
  auto bad_len = parse_harvest_config(R"({"dedup": {"embed_max_tokens": 0}})", "h.json");
  ASSERT_FALSE(bad_len.is_ok());
  EXPECT_NE(bad_len.status().message().find("dedup.embed_max_tokens must be >= 1"), std::string::npos);
}

// harvest() end to end: Python functions ("def " in the code) embed to one direction, everything else
// to another, so exactly one function per cluster survives — the one with the highest quality (ties:
// the earlier node), which the run without an embedder tells us through provenance.quality.
TEST(SemanticDedupHarvestTest, BestOfEachClusterSurvivesAndIsReported) {
  const std::string root = ::testing::TempDir() + "/harvest_semantic";
  fs::remove_all(root);
  const std::string repo = std::string(TL_SOURCE_DIR) + "/tests/harvest/fixtures/mini_repo";
  auto graph_nodes = [](const std::string& out) {
    std::map<int64_t, double> quality;  // node_id -> quality of graph-sourced examples
    auto text = read_file(out + "/examples.jsonl");
    EXPECT_TRUE(text.is_ok());
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      const auto& p = j["provenance"];
      if (p["source"] == "graph") quality[p["node_id"].get<int64_t>()] = p["quality"].get<double>();
    }
    return quality;
  };
  HarvestOptions plain;
  auto base = harvest(repo, root + "/plain", plain, nullptr);
  ASSERT_TRUE(base.is_ok()) << base.status().message();
  auto base_report = nlohmann::json::parse(base->report_json);
  EXPECT_FALSE(base_report["dedup"]["semantic"]["enabled"].get<bool>());
  EXPECT_EQ(base_report["dedup"]["semantic_removed"], 0);
  std::map<int64_t, double> before = graph_nodes(root + "/plain");

  HarvestOptions o;
  int64_t embedded = 0;
  o.dedup.embed = [&](const std::string& text) -> Result<std::vector<float>> {
    ++embedded;
    return text.find("def ") != std::string::npos ? std::vector<float>{1, 0} : std::vector<float>{0, 1};
  };
  o.dedup.embed_model = "fake";
  std::vector<std::string> stages;
  auto s = harvest(repo, root + "/sem", o, [&](const char* stage, int64_t, int64_t) {
    if (stages.empty() || stages.back() != stage) stages.emplace_back(stage);
  });
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_NE(std::find(stages.begin(), stages.end(), "embed"), stages.end());
  auto report = nlohmann::json::parse(s->report_json);
  const auto& sem = report["dedup"]["semantic"];
  EXPECT_TRUE(sem["enabled"].get<bool>());
  EXPECT_EQ(sem["model"], "fake");
  EXPECT_EQ(sem["threshold"], 0.85);
  EXPECT_EQ(sem["embedded"].get<int64_t>(), embedded);
  EXPECT_EQ(static_cast<int64_t>(before.size()), embedded);  // every dedup survivor was embedded once

  // Which node is Python: graph.sqlite is not needed, the removals and survivors carry file names.
  std::map<int64_t, std::string> file_of;
  std::set<int64_t> removed;
  for (const auto& rm : report["dedup"]["removed"]) {
    if (rm["reason"] != "semantic") continue;
    removed.insert(rm["node_id"].get<int64_t>());
    file_of[rm["node_id"].get<int64_t>()] = rm["file"];
    file_of[rm["kept_node_id"].get<int64_t>()] = rm["kept_file"];
    EXPECT_EQ(rm["similarity"], 1.0);
  }
  EXPECT_EQ(report["dedup"]["semantic_removed"].get<size_t>(), removed.size());
  EXPECT_EQ(sem["removed"].get<size_t>(), removed.size());
  EXPECT_EQ(s->dedup_semantic, static_cast<int64_t>(removed.size()));
  std::map<int64_t, double> after = graph_nodes(root + "/sem");
  ASSERT_EQ(after.size(), 2u);  // one survivor per cluster
  EXPECT_EQ(after.size() + removed.size(), before.size());
  // Expected survivors: the best of each cluster in the plain run.
  auto is_python = [&](int64_t id) { return file_of.at(id).ends_with(".py"); };
  std::map<bool, std::pair<double, int64_t>> best;  // python? -> (quality, -node_id)
  for (const auto& [id, q] : before) {
    ASSERT_TRUE(file_of.count(id)) << "node " << id << " neither removed nor a survivor's pair";
    auto cand = std::pair<double, int64_t>{q, -id};
    auto [it, fresh] = best.emplace(is_python(id), cand);
    if (!fresh && cand > it->second) it->second = cand;
  }
  ASSERT_EQ(best.size(), 2u);
  for (const auto& [py, qb] : best) EXPECT_TRUE(after.count(-qb.second)) << "expected survivor " << -qb.second;
  for (const auto& rm : report["dedup"]["removed"]) {
    if (rm["reason"] != "semantic") continue;
    EXPECT_EQ(is_python(rm["node_id"]), is_python(rm["kept_node_id"])) << rm.dump();
    EXPECT_TRUE(after.count(rm["kept_node_id"].get<int64_t>())) << rm.dump();
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace tl::harvest
