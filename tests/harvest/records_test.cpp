// Record importers on fixtures/records/ops.jsonl: one line per schema and per failure mode. Asserts
// the exact examples built (synthesis, decomposition, decision, tool_use in OpenAI format), the DPO
// pairs, the routing calibration table, and that every bad line is skipped with its line and reason
// while the good lines around it still import.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "harvest/harvest.h"
#include "harvest/records.h"

namespace tl::harvest {
namespace {

namespace fs = std::filesystem;
const std::string kOps = std::string(TL_SOURCE_DIR) + "/tests/harvest/fixtures/records/ops.jsonl";

class RecordsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto r = import_records({kOps}, {}, Redactor(), ExampleOptions{});
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    result_ = new RecordsResult(std::move(*r));
  }
  static void TearDownTestSuite() { delete result_; }
  static const Example* find(const std::string& kind, const std::string& id) {
    for (const auto& ex : result_->examples) {
      if (ex.kind == kind && ex.provenance.record_id == id) return &ex;
    }
    return nullptr;
  }
  static RecordsResult* result_;
};
RecordsResult* RecordsTest::result_ = nullptr;

TEST_F(RecordsTest, BadLinesSkippedWithLineAndReason) {
  std::vector<std::pair<int, std::string>> got;
  for (const auto& i : result_->skipped) {
    EXPECT_EQ(i.file, kOps);
    got.emplace_back(i.line, i.reason);
  }
  std::vector<std::pair<int, std::string>> want = {
      {5, "knowledge: field 'strength' must be a number in [0, 1]"},
      {7, "task: subtask 'a' depends on 'z', which is not an earlier subtask"},
      {9, "decision: 'chosen' ('c') is not one of 'options'"},
      {11, "tool_session messages[2]: tool call 'c1' has no tool result before this assistant message"},
      {22, "routing: field 'effort' is 'huge', expected one of: low, medium, high"},
      {28, "feedback: 'retry_of' names 'f99', which is no earlier feedback record"},
      {29, "feedback: unsupported version 2 (expected 1)"},
      {30, "unknown type 'incident' (expected knowledge, task, decision, tool_session, routing or feedback)"},
      {31, "not valid JSON"},
      {33, "missing field 'type'"}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(result_->lines_read, 32);  // the blank line 32 is not a record
  std::map<std::string, int64_t> by_type = {{"knowledge", 3}, {"task", 1},     {"decision", 1},
                                            {"tool_session", 1}, {"routing", 10}, {"feedback", 5}};
  EXPECT_EQ(result_->records_by_type, by_type);
  EXPECT_EQ(result_->weak_knowledge_skipped, 1);  // k4, strength 0.1
  EXPECT_EQ(result_->dangling_edges, 1);          // k2 → k9
}

TEST_F(RecordsTest, SynthesisFromKnowledgeEdges) {
  EXPECT_NE(find("synthesis", "k1"), nullptr);  // "led to" k2
  EXPECT_NE(find("synthesis", "k3"), nullptr);  // reinforces k2
  EXPECT_EQ(find("synthesis", "k4"), nullptr);  // too weak
  const Example* k2 = find("synthesis", "k2");
  ASSERT_NE(k2, nullptr);
  EXPECT_EQ(k2->user,
            "Synthesize what we know that bears on this semantic knowledge:\n\n"
            "Cache warmup: Warm caches before shifting traffic to new instances.");
  EXPECT_EQ(k2->assistant,
            "This semantic knowledge (strength 0.80) is connected to 2 other record(s).\n\n"
            "Derived from:\n- (episodic, strength 0.90) The 2024-03 outage came from a cache stampede after a deploy.\n\n"
            "Reinforced by:\n- (procedural, strength 0.70) Run warmup.sh on each new host, then enable it in the balancer.");
  EXPECT_EQ(k2->provenance.source, "records");
  EXPECT_EQ(k2->provenance.start_line, 2);
  EXPECT_DOUBLE_EQ(k2->provenance.quality, 0.8);
}

TEST_F(RecordsTest, TaskAndDecision) {
  const Example* t = find("decomposition", "t1");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->user,
            "Break this task down into subtasks, with their dependencies:\n\nAdd rate limiting to the public API\n\n"
            "Context: Traffic doubled last month.");
  EXPECT_EQ(t->assistant,
            "1. Measure current request rates per key\n2. Implement a token bucket per API key (after 1)\n"
            "3. Return 429 with Retry-After (after 2)\n   Document it in the API guide.");
  const Example* d = find("decision", "d1");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->user,
            "Which queue should the job service use?\n\nContext: Single node, 2 cores.\n\nOptions:\n"
            "- PostgreSQL SKIP LOCKED\n- Redis streams\n\nWhich option do you choose, and why?");
  EXPECT_EQ(d->assistant,
            "Choose: PostgreSQL SKIP LOCKED.\n\nWe already run PostgreSQL; one less service to operate.\n\n"
            "Outcome: Held up under 200 jobs/s.");
}

TEST_F(RecordsTest, ToolSessionInOpenAiFormat) {
  const Example* s = find("tool_use", "s1");
  ASSERT_NE(s, nullptr);
  auto j = nlohmann::json::parse(example_to_json(*s, "openai", false));
  const auto& m = j["messages"];
  ASSERT_EQ(m.size(), 7u);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[1], nlohmann::json({{"role", "user"}, {"content", "Why does test_parse fail?"}}));
  EXPECT_TRUE(m[2]["content"].is_null());
  EXPECT_EQ(m[2]["tool_calls"][0],
            nlohmann::json({{"id", "c1"}, {"type", "function"}, {"function", {{"name", "run_tests"}, {"arguments", "{}"}}}}));
  EXPECT_EQ(m[3], nlohmann::json({{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "FAILED test_parse: expected 3, got 2"}}));
  EXPECT_EQ(m[4]["content"], "Let me read the parser.");
  EXPECT_EQ(m[4]["tool_calls"][0]["function"]["arguments"], "{\"path\":\"src/parse.py\"}");
  EXPECT_EQ(m[6], nlohmann::json({{"role", "assistant"}, {"content", "parse() truncates to two fields with [:2]; drop the slice."}}));
  ASSERT_EQ(j["tools"].size(), 2u);
  EXPECT_EQ(j["tools"][0]["type"], "function");
  EXPECT_EQ(j["tools"][0]["function"]["name"], "read_file");
  EXPECT_EQ(j["tools"][0]["function"]["parameters"]["required"][0], "path");
  // ShareGPT: tool turns become function_call / observation.
  auto g = nlohmann::json::parse(example_to_json(*s, "sharegpt", false));
  EXPECT_EQ(g["conversations"][2]["from"], "function_call");
  EXPECT_EQ(g["conversations"][2]["value"], "{\"name\":\"run_tests\",\"arguments\":\"{}\"}");
  EXPECT_EQ(g["conversations"][3]["from"], "observation");
}

TEST_F(RecordsTest, DpoPairsFromRatingsAndRetries) {
  ASSERT_EQ(result_->dpo.size(), 2u);
  EXPECT_EQ(result_->dpo[0].source, "rating");
  EXPECT_EQ(dpo_to_json(result_->dpo[0]),
            R"({"prompt":"Write a haiku about caches","chosen":"Warm keys wait in RAM","rejected":"cache"})");
  const DpoPair& retry = result_->dpo[1];
  EXPECT_EQ(retry.source, "retry");
  EXPECT_EQ(retry.prompt, "Summarise the incident");
  EXPECT_EQ(retry.rejected, "Something broke.");
  // Redacted before use: the address in the approved answer is gone.
  EXPECT_EQ(retry.chosen.find("acme-corp"), std::string::npos);
  EXPECT_TRUE(retry.chosen.starts_with("A deploy emptied the cache; the stampede overloaded the DB for 12 minutes. Contact user_"))
      << retry.chosen;
}

TEST_F(RecordsTest, RoutingCalibrationTable) {
  auto cal = nlohmann::json::parse(result_->calibration_json);
  EXPECT_EQ(cal["calibration_version"], 1);
  EXPECT_EQ(cal["outcomes"], 10);
  const auto& t = cal["table"];
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0]["intent"], "code_review");
  EXPECT_EQ(t[0]["effort"], "high");
  EXPECT_EQ(t[0]["recommended_tier"], "large");  // small succeeds 1 of 3
  EXPECT_EQ(t[0]["tiers"][0]["tier"], "small");
  EXPECT_DOUBLE_EQ(t[0]["tiers"][0]["success_rate"].get<double>(), 0.333);
  EXPECT_EQ(t[0]["reason"], "cheapest tier with success rate >= 0.9 over >= 3 outcomes");
  EXPECT_EQ(t[1]["effort"], "low");
  EXPECT_EQ(t[1]["recommended_tier"], "small");
  EXPECT_DOUBLE_EQ(t[1]["tiers"][0]["mean_latency_ms"].get<double>(), 900.0);
  EXPECT_EQ(t[2]["intent"], "summarize");
  EXPECT_TRUE(t[2]["recommended_tier"].is_null());
  EXPECT_EQ(t[2]["reason"], "insufficient data: no tier has 3 outcomes");
}

TEST(RecordsHarvestTest, OutputsAndReport) {
  std::string repo = ::testing::TempDir() + "/harvest_records_repo";
  fs::create_directories(repo);
  std::string out = ::testing::TempDir() + "/harvest_records_out";
  HarvestOptions opt;
  opt.records = {kOps};
  auto s = harvest(repo, out, opt, nullptr);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(s->dpo_pairs, 2);
  auto dpo = read_file(out + "/dpo.jsonl");
  ASSERT_TRUE(dpo.is_ok());
  EXPECT_EQ(std::count(dpo->begin(), dpo->end(), '\n'), 2);
  EXPECT_TRUE(fs::exists(out + "/routing_calibration.json"));
  auto report = nlohmann::json::parse(s->report_json);
  EXPECT_EQ(report["records"]["skipped_lines"].size(), 10u);
  EXPECT_EQ(report["records"]["skipped_lines"][0]["line"], 5);
  EXPECT_EQ(report["examples"]["by_kind"]["tool_use"], 1);
  EXPECT_EQ(report["examples"]["by_kind"]["synthesis"], 3);

  opt.records = {repo + "/missing.jsonl"};
  auto missing = harvest(repo, out, opt, nullptr);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("records file '" + repo + "/missing.jsonl' not found"), std::string::npos);
}

}  // namespace
}  // namespace tl::harvest
