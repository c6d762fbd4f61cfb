// Every compiled-in grammar loads into Debian's libtree-sitter (ABI <= 14) and parses a snippet of
// its language without ERROR nodes; extensions map to the right language.
#include <gtest/gtest.h>
#include <tree_sitter/api.h>

#include "harvest/language.h"

namespace tl::harvest {
namespace {

TEST(GrammarTest, AllGrammarsLoadAndParse) {
  struct Case {
    Language lang;
    const char* code;
  } cases[] = {
      {Language::kPython, "def f(x):\n    return x + 1\n"},
      {Language::kC, "int f(int x) { return x + 1; }\n"},
      {Language::kCpp, "template <class T> T f(T x) { return x + 1; }\n"},
      {Language::kJavaScript, "function f(x) { return x + 1; }\n"},
      {Language::kTypeScript, "function f(x: number): number { return x + 1; }\n"},
      {Language::kTsx, "const A = () => <div>hi</div>;\n"},
      {Language::kGo, "package p\nfunc f(x int) int { return x + 1 }\n"},
      {Language::kRust, "fn f(x: i32) -> i32 { x + 1 }\n"},
      {Language::kJava, "class A { int f(int x) { return x + 1; } }\n"},
      {Language::kBash, "f() { echo \"$1\"; }\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(language_name(c.lang));
    const TSLanguage* ts = tree_sitter_language(c.lang);
    ASSERT_NE(ts, nullptr);
    EXPECT_LE(ts_language_version(ts), static_cast<uint32_t>(TREE_SITTER_LANGUAGE_VERSION));
    EXPECT_GE(ts_language_version(ts), static_cast<uint32_t>(TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION));
    TSParser* parser = ts_parser_new();
    ASSERT_TRUE(ts_parser_set_language(parser, ts));
    TSTree* tree = ts_parser_parse_string(parser, nullptr, c.code, static_cast<uint32_t>(strlen(c.code)));
    ASSERT_NE(tree, nullptr);
    EXPECT_FALSE(ts_node_has_error(ts_tree_root_node(tree)));
    ts_tree_delete(tree);
    ts_parser_delete(parser);
  }
}

TEST(GrammarTest, DetectLanguage) {
  EXPECT_EQ(detect_language("a/b.py"), Language::kPython);
  EXPECT_EQ(detect_language("x.h"), Language::kC);
  EXPECT_EQ(detect_language("x.hpp"), Language::kCpp);
  EXPECT_EQ(detect_language("x.tsx"), Language::kTsx);
  EXPECT_EQ(detect_language("deploy.sh"), Language::kBash);
  EXPECT_EQ(detect_language("conf/.env"), Language::kDotEnv);
  EXPECT_EQ(detect_language(".env.production"), Language::kDotEnv);
  EXPECT_EQ(detect_language("docs/README.md"), Language::kMarkdown);
  EXPECT_EQ(detect_language("Makefile"), Language::kUnknown);
  EXPECT_EQ(detect_language("image.png"), Language::kUnknown);
}

}  // namespace
}  // namespace tl::harvest
