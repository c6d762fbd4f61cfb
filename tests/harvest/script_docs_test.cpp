// Script doc headers → instruction/output pairs, checked as data: every file under
// fixtures/script_docs/ is parsed and its examples must equal, in order, the lines of
// fixtures/script_docs.expected.jsonl for that file ({"file", "user", "assistant"}). Files that must
// give nothing (a shell comment without `Usage:`, a one-word module docstring) are in the fixtures too.
// Set TL_REGENERATE=1 to rewrite the expected file after a deliberate change — then read the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file.h"
#include "harvest/examples.h"
#include "harvest/script_docs.h"

namespace tl::harvest {
namespace {

namespace fs = std::filesystem;

const std::string kDir = std::string(TL_SOURCE_DIR) + "/tests/harvest/fixtures/script_docs";
const std::string kExpected = std::string(TL_SOURCE_DIR) + "/tests/harvest/fixtures/script_docs.expected.jsonl";

std::string actual_jsonl() {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(kDir)) {
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), kDir).string());
  }
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) {
    auto text = read_file(kDir + "/" + f);
    EXPECT_TRUE(text.is_ok()) << f;
    for (const auto& doc : parse_script_docs(f, detect_language(f), *text)) {
      for (const auto& ex : build_script_doc_examples(doc, 0, ExampleOptions{}, "")) {
        nlohmann::ordered_json j = {{"file", f}, {"lines", {ex.provenance.start_line, ex.provenance.end_line}},
                                    {"user", ex.user}, {"assistant", ex.assistant}};
        out += j.dump() + "\n";
      }
    }
  }
  return out;
}

TEST(ScriptDocsTest, FixturesGiveExpectedExamples) {
  std::string actual = actual_jsonl();
  if (const char* regen = std::getenv("TL_REGENERATE"); regen && std::string(regen) == "1") {
    ASSERT_TRUE(write_file_atomic(kExpected, actual).is_ok());
    GTEST_SKIP() << "rewrote " << kExpected;
  }
  auto expected = read_file(kExpected);
  ASSERT_TRUE(expected.is_ok()) << expected.status().message();
  std::istringstream a(actual), e(*expected);
  std::string la, le;
  int line = 0;
  while (true) {
    bool ga = static_cast<bool>(std::getline(a, la)), ge = static_cast<bool>(std::getline(e, le));
    ++line;
    if (!ga && !ge) break;
    ASSERT_EQ(ga, ge) << "example count differs at expected line " << line;
    EXPECT_EQ(nlohmann::json::parse(la), nlohmann::json::parse(le)) << "expected line " << line;
  }
}

TEST(ScriptDocsTest, PowerShellSectionsAndFunctionNames) {
  auto text = read_file(kDir + "/tools/Deploy-App.ps1");
  ASSERT_TRUE(text.is_ok());
  auto docs = parse_script_docs("tools/Deploy-App.ps1", Language::kPowerShell, *text);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_FALSE(docs[0].is_function);
  EXPECT_EQ(docs[0].name, "Deploy-App.ps1");
  EXPECT_EQ(docs[0].synopsis, "Deploys the web app to one environment.");
  ASSERT_EQ(docs[0].parameters.size(), 2u);
  EXPECT_EQ(docs[0].parameters[1].first, "Version");
  ASSERT_EQ(docs[0].examples.size(), 2u);
  EXPECT_EQ(docs[0].examples[0].code, "./Deploy-App.ps1 -Environment staging -Version 1.4.2");
  EXPECT_EQ(docs[0].examples[0].text, "Deploys release 1.4.2 to the staging hosts.");
  EXPECT_EQ(docs[0].examples[1].text, "");  // code only: no instruction can be written for it
  EXPECT_TRUE(docs[1].is_function);
  EXPECT_EQ(docs[1].name, "Restart-AppService");  // help as the first thing inside the function body
  EXPECT_EQ(docs[1].start_line, 31);
  EXPECT_EQ(docs[1].end_line, 40);
}

TEST(ScriptDocsTest, NotHeaders) {
  EXPECT_TRUE(parse_script_docs("a.sh", Language::kBash, "#!/bin/sh\n# no usage here\necho\n").empty());
  EXPECT_TRUE(parse_script_docs("a.py", Language::kPython, "import os\n\"\"\"Not first.\"\"\"\n").empty());
  EXPECT_TRUE(parse_script_docs("a.py", Language::kPython, "\"\"\"Unterminated\n").empty());
  EXPECT_TRUE(parse_script_docs("a.ps1", Language::kPowerShell, "<# just a comment #>\n").empty());
  EXPECT_TRUE(parse_script_docs("a.c", Language::kC, "/* Usage: x */\n").empty());
}

}  // namespace
}  // namespace tl::harvest
