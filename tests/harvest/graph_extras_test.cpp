// Graph behaviours added with the rest of issue 5, on small repositories written by the test:
// Python `cls(...)` resolving to the enclosing class, implement answers without the docstring, per-file
// progress, and the repo-wide username pass (a name learned from /home/NAME in one file is replaced in
// every other file).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harvest/code_graph.h"
#include "harvest/examples.h"

namespace tl::harvest {
namespace {

namespace fs = std::filesystem;

std::string make_repo(const std::string& name, const std::vector<std::pair<std::string, std::string>>& files) {
  std::string root = ::testing::TempDir() + "/" + name;
  fs::remove_all(root);
  for (const auto& [path, text] : files) {
    fs::create_directories(fs::path(root + "/" + path).parent_path());
    std::ofstream(root + "/" + path) << text;
  }
  return root;
}

const Node* find(const CodeGraph& g, const std::string& qname) {
  for (const auto& n : g.nodes()) {
    if (n.qualified_name == qname) return &n;
  }
  return nullptr;
}

const char* kShapes = R"(class Shape:
    @classmethod
    def unit(cls):
        """Build the unit shape."""
        shape = cls(1)
        shape.check()
        return shape

    def check(self):
        return True


class Other:
    def unit(self):
        return Shape(2)
)";

TEST(GraphExtrasTest, PythonClsCallsResolveToTheEnclosingClass) {
  auto repo = make_repo("harvest_cls", {{"shapes.py", kShapes}});
  auto g = CodeGraph::build(repo, {}, Redactor());
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  const Node* unit = find(*g, "Shape.unit");
  const Node* shape = find(*g, "Shape");
  ASSERT_NE(unit, nullptr);
  ASSERT_NE(shape, nullptr);
  bool calls_class = false;
  for (size_t i : g->out_edges(unit->id)) {
    const Edge& e = g->edges()[i];
    if (e.kind == EdgeKind::kCalls && e.dst == shape->id) {
      calls_class = true;
      EXPECT_DOUBLE_EQ(e.confidence, 0.95);
      EXPECT_EQ(e.evidence, "same-file call at line 5");
    }
  }
  EXPECT_TRUE(calls_class);
  EXPECT_TRUE(unit->params.empty());  // cls is not a parameter worth naming
}

TEST(GraphExtrasTest, BodyWithoutDocstring) {
  auto repo = make_repo("harvest_doc", {{"shapes.py", kShapes}});
  auto g = CodeGraph::build(repo, {}, Redactor());
  ASSERT_TRUE(g.is_ok());
  const Node* unit = find(*g, "Shape.unit");
  ASSERT_NE(unit, nullptr);
  EXPECT_EQ(unit->docstring, "Build the unit shape.");
  EXPECT_EQ(body_without_docstring(*unit),
            "@classmethod\n    def unit(cls):\n        shape = cls(1)\n        shape.check()\n        return shape");
  const Node* check = find(*g, "Shape.check");
  ASSERT_NE(check, nullptr);
  EXPECT_EQ(body_without_docstring(*check), check->body);  // nothing to remove
}

TEST(GraphExtrasTest, ProgressPerFile) {
  auto repo = make_repo("harvest_progress", {{"a.py", "x = 1\n"}, {"b.py", "y = 2\n"}, {"c/d.sh", "echo\n"}});
  std::vector<std::pair<int64_t, int64_t>> calls;
  auto g = CodeGraph::build(repo, {}, Redactor(), [&](int64_t done, int64_t total) { calls.emplace_back(done, total); });
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(calls, (std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {2, 3}, {3, 3}}));
}

TEST(GraphExtrasTest, RepoWideUsernamePass) {
  // "a_notes.py" is processed knowing nothing of jdoe; the home directory is only in "z_paths.py".
  auto repo = make_repo("harvest_users", {{"a_notes.py", "# ask jdoe before changing this\nOWNER = 'jdoe'\n"},
                                          {"z_paths.py", "DATA = '/home/jdoe/data'\n"},
                                          {"m_other.py", "# nothing personal here\n"}});
  Redactor r;
  auto g = CodeGraph::build(repo, {}, r);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->repo_usernames(), std::vector<std::string>{"jdoe"});
  const std::string h = r.hash_name("jdoe");
  // The file node's docstring and every config/string-derived text come from the redacted file; the
  // file-level facts are easiest to see through the redaction counts.
  EXPECT_EQ(g->redactions().get(RedactionKind::kHomeDir), 1);
  EXPECT_EQ(g->redactions().get(RedactionKind::kUsername), 2);  // both mentions in a_notes.py
  for (const auto& n : g->nodes()) {
    EXPECT_EQ(n.body.find("jdoe"), std::string::npos) << n.file;
    EXPECT_EQ(n.docstring.find("jdoe"), std::string::npos) << n.file;
  }
}

}  // namespace
}  // namespace tl::harvest
