// `tuneloop harvest REPO --out DIR --model TINY` end to end: a tiny BPE tokenizer + random Qwen2-shaped
// model built here embed every function that survives exact/near dedup; report.json carries the
// semantic section, progress shows the embed stage, the run is deterministic, and a bad model directory
// fails before any harvesting with the directory named.
//
// What a random model can tell apart: with N(0, 1) embeddings and N(0, 0.02) layers the mean-pooled
// final hidden state is close to a bag of tokens. The fixture's `parse_duration_legacy` is
// `parse_duration` with a few words changed, which MinHash removes as a near duplicate; with the near
// pass off, the semantic pass must remove it instead (measured cosine 0.993) and nothing else (the
// highest cosine between unrelated functions measured 0.65, well under 0.85).
#include <gtest/gtest.h>

#include "run_tuneloop.h"
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/file.h"
#include "model/random_model.h"
#include "tokenizer/bpe_trainer.h"

namespace {

namespace fs = std::filesystem;

using tl::cli_test::Outcome;
Outcome run(const std::string& args, bool stdout_only = false) { return tl::cli_test::run_tuneloop(args, stdout_only); }

const std::string kRepo = std::string(TL_SOURCE_DIR) + "/tests/harvest/fixtures/mini_repo";

class HarvestSemanticCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = (fs::temp_directory_path() / ("tl_harvest_sem_" + std::to_string(::getpid()))).string();
    fs::remove_all(root_);
    fs::create_directories(root_);
    // The tokenizer learns its merges from the fixture's own text, so functions are tokens, not bytes.
    std::string corpus;
    for (const auto& e : fs::recursive_directory_iterator(kRepo)) {
      if (!e.is_regular_file()) continue;
      auto text = tl::read_file(e.path().string());
      if (text.is_ok()) corpus += *text + "\n";
    }
    auto vocab = tl::write_bpe_tokenizer(root_ + "/tiny", corpus, {});
    ASSERT_TRUE(vocab.is_ok()) << vocab.status().message();
    tl::ModelConfig c;
    c.model_type = "qwen2";
    c.vocab_size = *vocab;
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.max_position_embeddings = 512;
    c.tie_word_embeddings = true;
    c.qkv_bias = true;
    ASSERT_TRUE(tl::write_random_model(root_ + "/tiny", c, 11, /*embed_std=*/1.0f).is_ok());
  }
  static void TearDownTestSuite() {
    if (!getenv("TL_KEEP")) fs::remove_all(root_);
  }
  static nlohmann::json report(const std::string& out) {
    auto text = tl::read_file(out + "/report.json");
    EXPECT_TRUE(text.is_ok()) << out;
    return nlohmann::json::parse(text.is_ok() ? *text : "{}");
  }
  static std::string root_;
};
std::string HarvestSemanticCli::root_;

TEST_F(HarvestSemanticCli, ReportsSemanticRemovals) {
  const std::string out = root_ + "/out";
  ASSERT_TRUE(tl::write_file_atomic(root_ + "/near_off.json", R"({"dedup": {"near": false}})").is_ok());
  Outcome r =
      run("harvest " + kRepo + " --out " + out + " --model " + root_ + "/tiny --config " + root_ + "/near_off.json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("semantic dedup: " + root_ + "/tiny (hidden 64, 2 layers), first 512 tokens"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("embed: "), std::string::npos) << r.out;  // progress (not a TTY: plain lines)
  EXPECT_NE(r.out.find("dedup: removed 1 functions (0 exact, 0 near, 1 semantic)"), std::string::npos) << r.out;

  nlohmann::json rep = report(out);
  const auto& d = rep["dedup"];
  const auto& sem = d["semantic"];
  ASSERT_TRUE(sem.is_object()) << d.dump();
  EXPECT_TRUE(sem["enabled"].get<bool>());
  EXPECT_EQ(sem["model"], root_ + "/tiny");
  EXPECT_EQ(sem["threshold"], 0.85);
  EXPECT_EQ(sem["max_tokens"], 512);
  // Everything that passed the gate and survived exact/near was embedded once.
  const int64_t passed = rep["functions"]["passed_gate"];
  const int64_t exact = d["exact_removed"], near = d["near_removed"];
  EXPECT_EQ(sem["embedded"].get<int64_t>(), passed - exact - near);
  EXPECT_EQ(d["semantic_removed"], 1);
  EXPECT_EQ(sem["removed"], 1);
  ASSERT_EQ(d["removed"].size(), 1u) << d.dump(2);
  const auto& rm = d["removed"][0];
  EXPECT_EQ(rm["reason"], "semantic");
  EXPECT_EQ(rm["name"], "parse_duration_legacy");
  EXPECT_EQ(rm["file"], "app/legacy.py");
  EXPECT_EQ(rm["kept_file"], "app/util.py");  // parse_duration: called and tested, so the higher quality
  EXPECT_GT(rm["similarity"].get<double>(), 0.95) << rm.dump();
  EXPECT_LE(rm["similarity"].get<double>(), 1.0) << rm.dump();
  const std::set<int64_t> removed = {rm["node_id"].get<int64_t>()};
  // No example comes from a removed function.
  auto ex = tl::read_file(out + "/examples.jsonl");
  ASSERT_TRUE(ex.is_ok());
  std::istringstream in(*ex);
  std::string line;
  std::set<int64_t> sources;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["provenance"]["source"] == "graph") sources.insert(j["provenance"]["node_id"].get<int64_t>());
  }
  for (int64_t id : sources) EXPECT_FALSE(removed.count(id)) << "examples from removed node " << id;
  EXPECT_EQ(static_cast<int64_t>(sources.size()), sem["embedded"].get<int64_t>() - 1);  // every survivor has examples

  // Same inputs, same embeddings, same removals.
  const std::string again = root_ + "/again";
  ASSERT_EQ(run("harvest " + kRepo + " --out " + again + " --model " + root_ + "/tiny --quiet --config " + root_ +
                "/near_off.json")
                .code,
            0);
  EXPECT_EQ(report(again)["dedup"]["removed"], d["removed"]);
}

// Default passes: MinHash takes the legacy copy first, so the semantic pass embeds the rest and removes
// nothing.
TEST_F(HarvestSemanticCli, NearPassFirst) {
  const std::string out = root_ + "/default";
  Outcome r = run("harvest " + kRepo + " --out " + out + " --model " + root_ + "/tiny --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("dedup: removed 1 functions (0 exact, 1 near, 0 semantic)"), std::string::npos) << r.out;
  nlohmann::json rep = report(out);
  EXPECT_TRUE(rep["dedup"]["semantic"]["enabled"].get<bool>());
  EXPECT_EQ(rep["dedup"]["semantic"]["embedded"].get<int64_t>(), rep["functions"]["passed_gate"].get<int64_t>() - 1);
  EXPECT_EQ(rep["dedup"]["semantic_removed"], 0);
}

TEST_F(HarvestSemanticCli, WithoutModelSemanticIsOff) {
  const std::string out = root_ + "/plain";
  Outcome r = run("harvest " + kRepo + " --out " + out + " --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("semantic off (--model DIR)"), std::string::npos) << r.out;
  nlohmann::json rep = report(out);
  EXPECT_FALSE(rep["dedup"]["semantic"]["enabled"].get<bool>());
  EXPECT_TRUE(rep["dedup"]["semantic"]["model"].is_null());
  EXPECT_EQ(rep["dedup"]["semantic_removed"], 0);
}

TEST_F(HarvestSemanticCli, BadModelDirFailsFirst) {
  const std::string out = root_ + "/bad";
  Outcome r = run("harvest " + kRepo + " --out " + out + " --model " + root_ + "/nowhere");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(root_ + "/nowhere"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out + "/report.json"));  // failed before harvesting anything
}

}  // namespace
