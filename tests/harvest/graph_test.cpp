// Code graph on the mini_repo fixture (Python, C, C++, JavaScript, TypeScript, Go, Rust, Java, Bash,
// YAML, .env, Markdown): the expected nodes and edges are data in fixtures/mini_repo.expected.json, so
// adding a case is adding a line there. Also checks graph.sqlite against the in-memory graph.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "harvest/code_graph.h"
#include "harvest/graph_store.h"

namespace tl::harvest {
namespace {

const std::string kFixture = std::string(TL_SOURCE_DIR) + "/tests/harvest/fixtures/mini_repo";

class GraphTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Redactor redactor;
    auto g = CodeGraph::build(kFixture, {}, redactor);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    graph_ = new CodeGraph(std::move(g).value());
    auto text = read_file(std::string(TL_SOURCE_DIR) + "/tests/harvest/fixtures/mini_repo.expected.json");
    ASSERT_TRUE(text.is_ok());
    expected_ = new nlohmann::json(nlohmann::json::parse(*text));
  }
  static void TearDownTestSuite() {
    delete graph_;
    delete expected_;
  }
  static const Node* by_qname(const std::string& q) {
    for (const auto& n : graph_->nodes()) {
      if (n.qualified_name == q) return &n;
    }
    return nullptr;
  }
  static CodeGraph* graph_;
  static nlohmann::json* expected_;
};
CodeGraph* GraphTest::graph_ = nullptr;
nlohmann::json* GraphTest::expected_ = nullptr;

TEST_F(GraphTest, FunctionsMatchExpectedFacts) {
  for (const auto& e : (*expected_)["functions"]) {
    std::string name = e["name"];
    SCOPED_TRACE(name);
    const Node* n = by_qname(name);
    ASSERT_NE(n, nullptr) << "function not found";
    EXPECT_EQ(n->file, e["file"].get<std::string>());
    EXPECT_EQ(node_kind_name(n->kind), e["kind"].get<std::string>());
    if (e.contains("complexity")) {
      EXPECT_EQ(n->complexity, e["complexity"].get<int>());
    }
    if (e.contains("error_handlers")) {
      EXPECT_EQ(n->error_handlers, e["error_handlers"].get<int>());
    }
    if (e.contains("params")) {
      EXPECT_EQ(n->params, e["params"].get<std::vector<std::string>>());
    }
    if (e.contains("lines")) {
      EXPECT_EQ(n->start_line, e["lines"][0].get<int>());
      EXPECT_EQ(n->end_line, e["lines"][1].get<int>());
    }
    if (e.contains("doc_prefix")) {
      EXPECT_TRUE(n->docstring.starts_with(e["doc_prefix"].get<std::string>())) << n->docstring;
    }
    if (e.contains("fan_in_min")) {
      EXPECT_GE(n->fan_in, e["fan_in_min"].get<int>());
    }
    if (e.contains("fan_out_min")) {
      EXPECT_GE(n->fan_out, e["fan_out_min"].get<int>());
    }
    EXPECT_FALSE(n->signature.empty());
    EXPECT_FALSE(n->body.empty());
  }
}

TEST_F(GraphTest, ClassesWithBases) {
  for (const auto& e : (*expected_)["classes"]) {
    std::string name = e["name"];
    SCOPED_TRACE(name);
    const Node* n = by_qname(name);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->kind, NodeKind::kClass);
    if (e.contains("bases")) {
      EXPECT_EQ(n->bases, e["bases"].get<std::vector<std::string>>());
    }
  }
}

TEST_F(GraphTest, EdgesMatchExpected) {
  for (const auto& e : (*expected_)["edges"]) {
    std::string desc = e.dump();
    SCOPED_TRACE(desc);
    const Node* src = by_qname(e["src"]);
    const Node* dst = by_qname(e["dst"]);
    ASSERT_NE(src, nullptr);
    ASSERT_NE(dst, nullptr);
    const Edge* found = nullptr;
    for (size_t i : graph_->out_edges(src->id)) {
      const Edge& edge = graph_->edges()[i];
      if (edge.dst == dst->id && edge_kind_name(edge.kind) == e["kind"].get<std::string>()) found = &edge;
    }
    ASSERT_NE(found, nullptr) << "edge missing";
    EXPECT_GE(found->confidence, e["min_confidence"].get<double>());
    EXPECT_LE(found->confidence, 1.0);
    EXPECT_FALSE(found->evidence.empty());
  }
}

TEST_F(GraphTest, ConfigKeysAndDocSections) {
  for (const auto& k : (*expected_)["config_keys"]) {
    const Node* n = by_qname(k.get<std::string>());
    ASSERT_NE(n, nullptr) << k;
    EXPECT_EQ(n->kind, NodeKind::kConfigKey);
  }
  for (const auto& s : (*expected_)["doc_sections"]) {
    const Node* n = by_qname(s.get<std::string>());
    ASSERT_NE(n, nullptr) << s;
    EXPECT_EQ(n->kind, NodeKind::kDocSection);
  }
}

TEST_F(GraphTest, SecretsNeverReachTheGraph) {
  // .env holds a GitHub token and a password; README an e-mail, an IP, a home dir and a git remote.
  for (const auto& n : graph_->nodes()) {
    for (const std::string* s : {&n.body, &n.docstring, &n.signature, &n.name}) {
      EXPECT_EQ(s->find("ghp_Xq7"), std::string::npos) << n.qualified_name;
      EXPECT_EQ(s->find("Tr0ub4dor"), std::string::npos) << n.qualified_name;
      EXPECT_EQ(s->find("jane.roe@"), std::string::npos) << n.qualified_name;
      EXPECT_EQ(s->find("10.20.30.40"), std::string::npos) << n.qualified_name;
      EXPECT_EQ(s->find("/home/jroe"), std::string::npos) << n.qualified_name;
      EXPECT_EQ(s->find("acme/mini-app"), std::string::npos) << n.qualified_name;
    }
  }
  EXPECT_EQ(graph_->redactions().get(RedactionKind::kSecret), 2);
  EXPECT_EQ(graph_->redactions().get(RedactionKind::kEmail), 1);
  EXPECT_EQ(graph_->redactions().get(RedactionKind::kIp), 1);
  EXPECT_EQ(graph_->redactions().get(RedactionKind::kHomeDir), 1);
  EXPECT_EQ(graph_->redactions().get(RedactionKind::kGitRemote), 1);
}

TEST_F(GraphTest, DeterministicIds) {
  Redactor redactor;
  auto again = CodeGraph::build(kFixture, {.threads = 1}, redactor);
  ASSERT_TRUE(again.is_ok());
  ASSERT_EQ(again->nodes().size(), graph_->nodes().size());
  ASSERT_EQ(again->edges().size(), graph_->edges().size());
  for (size_t i = 0; i < graph_->nodes().size(); ++i) {
    EXPECT_EQ(again->nodes()[i].qualified_name, graph_->nodes()[i].qualified_name);
  }
}

TEST_F(GraphTest, SqliteMatchesGraph) {
  std::string dir = ::testing::TempDir() + "/graph_sqlite_test";
  std::filesystem::create_directories(dir);
  std::string path = dir + "/graph.sqlite";
  ASSERT_TRUE(write_graph_sqlite(*graph_, path).is_ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  auto scalar = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW) << sql;
    std::string v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
  };
  EXPECT_EQ(scalar("SELECT count(*) FROM nodes"), std::to_string(graph_->nodes().size()));
  EXPECT_EQ(scalar("SELECT count(*) FROM edges"), std::to_string(graph_->edges().size()));
  EXPECT_EQ(scalar("SELECT value FROM meta WHERE key='schema_version'"), std::to_string(kGraphSchemaVersion));
  EXPECT_EQ(scalar("SELECT complexity FROM nodes WHERE kind='function' AND qualified_name='parse_duration'"), "6");
  EXPECT_EQ(scalar("SELECT params FROM nodes WHERE qualified_name='ring_push'"), "[\"r\",\"value\"]");
  EXPECT_EQ(scalar("SELECT count(*) FROM edges e JOIN nodes s ON s.id=e.src JOIN nodes d ON d.id=e.dst "
                   "WHERE e.kind='tests' AND s.name='test_normalize_name' AND d.name='normalize_name'"),
            "1");
  sqlite3_close(db);
}

}  // namespace
}  // namespace tl::harvest
