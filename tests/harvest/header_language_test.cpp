// `.h` files: parsed as C++ in a repository that has C++ sources (C++ headers would mostly fail the C
// grammar and be skipped), as C otherwise.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harvest/code_graph.h"

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

const char* kCppHeader = R"(#pragma once
#include <string>
namespace app {
template <typename T>
class Box {
 public:
  explicit Box(T v) : v_(std::move(v)) {}
  const T& get() const { return v_; }
 private:
  T v_;
};
inline int clamp_sum(int a, int b) {
  int s = a + b;
  if (s > 100) return 100;
  if (s < -100) return -100;
  return s;
}
}  // namespace app
)";

TEST(HeaderLanguage, CppRepositoryParsesHeadersAsCpp) {
  auto repo = make_repo("hdr_cpp", {{"src/box.h", kCppHeader}, {"src/main.cpp", "#include \"box.h\"\nint main() { return app::clamp_sum(1, 2); }\n"}});
  auto g = CodeGraph::build(repo, {}, Redactor());
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  for (const auto& s : g->skipped()) EXPECT_NE(s.path, "src/box.h") << s.reason;
  bool found = false;
  for (const auto& n : g->nodes()) {
    if (n.file == "src/box.h" && n.qualified_name.find("clamp_sum") != std::string::npos) {
      found = true;
      EXPECT_EQ(n.language, Language::kCpp);
    }
  }
  EXPECT_TRUE(found);
}

TEST(HeaderLanguage, CRepositoryKeepsHeadersAsC) {
  auto repo = make_repo("hdr_c", {{"lib.h", "int add(int a, int b);\n"}, {"lib.c", "#include \"lib.h\"\nint add(int a, int b) { return a + b; }\n"}});
  auto g = CodeGraph::build(repo, {}, Redactor());
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  int seen = 0;
  for (const auto& n : g->nodes()) {
    if (n.file != "lib.h") continue;
    EXPECT_EQ(n.language, Language::kC);
    ++seen;
  }
  EXPECT_GT(seen, 0);
}

}  // namespace
}  // namespace tl::harvest
