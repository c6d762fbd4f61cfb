// Git history: a fixture repository built at run time with the git CLI (root commit, a refactor, a bug
// fix, a docs-only commit) must give exactly the refactor and the fix as before/after pairs, the fix
// must become a `fix` example with the fixing commit as provenance, and max_commits must bound the walk.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file.h"
#include "harvest/git_history.h"
#include "harvest/harvest.h"
#include "run_command.h"

namespace tl::harvest {
namespace {

namespace fs = std::filesystem;

const char* kClampBuggy = R"(def clamp(value, low, high):
    """Clamp value into [low, high]."""
    if value < low:
        return low
    if value > high:
        return low
    return value)";

const char* kClampFixed = R"(def clamp(value, low, high):
    """Clamp value into [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value)";

const char* kMeanLoop = R"(def mean(values):
    total = 0
    for v in values:
        total += v
    return total / len(values))";

const char* kMeanSum = R"(def mean(values):
    if not values:
        return 0.0
    return sum(values) / len(values))";

std::string run(const std::string& cmd) {
  std::string out = test::run_command(cmd).second;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class GitHistoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = ::testing::TempDir() + "/harvest_git_fixture";
    fs::remove_all(repo_);
    fs::create_directories(repo_);
    // Isolated from the machine's git configuration; fixed identity.
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    setenv("GIT_AUTHOR_NAME", "Fixture", 1);
    setenv("GIT_AUTHOR_EMAIL", "fixture@example.com", 1);
    setenv("GIT_COMMITTER_NAME", "Fixture", 1);
    setenv("GIT_COMMITTER_EMAIL", "fixture@example.com", 1);
    std::string git = "git -C " + repo_ + " ";
    ASSERT_EQ(std::system((git + "init -q -b main").c_str()), 0);
    auto commit = [&](const std::string& clamp, const std::string& mean, const std::string& msg) {
      std::ofstream(repo_ + "/calc.py") << clamp << "\n\n\n" << mean << "\n";
      ASSERT_EQ(std::system((git + "add -A && " + git + "commit -q -m '" + msg + "'").c_str()), 0);
    };
    commit(kClampBuggy, kMeanLoop, "Add clamp and mean");
    commit(kClampBuggy, kMeanSum, "Use sum() in mean and handle empty input");
    commit(kClampFixed, kMeanSum, "Fix clamp returning low for values above high\n\nReported by jane.roe@corp.io.");
    std::ofstream(repo_ + "/README.md") << "# calc\n";
    ASSERT_EQ(std::system((git + "add -A && " + git + "commit -q -m 'Add README'").c_str()), 0);
    fix_commit_ = run(git + "rev-parse HEAD~1");
    refactor_commit_ = run(git + "rev-parse HEAD~2");
    ASSERT_EQ(fix_commit_.size(), 40u);
  }
  static std::string repo_, fix_commit_, refactor_commit_;
};
std::string GitHistoryTest::repo_, GitHistoryTest::fix_commit_, GitHistoryTest::refactor_commit_;

TEST_F(GitHistoryTest, PairsForChangedFunctionsOnly) {
  auto h = read_history(repo_, {}, Redactor());
  ASSERT_TRUE(h.is_ok()) << h.status().message();
  EXPECT_TRUE(h->stats.is_git_repo);
  EXPECT_EQ(h->stats.commits_walked, 4);
  EXPECT_EQ(h->stats.root_commits, 1);
  EXPECT_EQ(h->stats.fix_commits, 1);
  EXPECT_FALSE(h->stats.truncated);
  ASSERT_EQ(h->changes.size(), 2u);

  const FunctionChange& fix = h->changes[0];  // newest first
  EXPECT_EQ(fix.commit, fix_commit_);
  EXPECT_EQ(fix.qualified_name, "clamp");
  EXPECT_EQ(fix.file, "calc.py");
  EXPECT_TRUE(fix.is_fix);
  EXPECT_EQ(fix.before, kClampBuggy);
  EXPECT_EQ(fix.after, kClampFixed);
  EXPECT_EQ(fix.before_start, 1);
  EXPECT_EQ(fix.before_end, 7);
  // The message is redacted like everything else.
  EXPECT_EQ(fix.message.find("jane.roe@corp.io"), std::string::npos) << fix.message;
  EXPECT_TRUE(fix.message.starts_with("Fix clamp returning low for values above high\n\nReported by user_"))
      << fix.message;

  const FunctionChange& refactor = h->changes[1];
  EXPECT_EQ(refactor.commit, refactor_commit_);
  EXPECT_EQ(refactor.qualified_name, "mean");
  EXPECT_FALSE(refactor.is_fix);
  EXPECT_EQ(refactor.before, kMeanLoop);
  EXPECT_EQ(refactor.after, kMeanSum);
  EXPECT_EQ(refactor.after_start, 10);
  EXPECT_EQ(refactor.after_end, 13);
}

TEST_F(GitHistoryTest, MaxCommitsBoundsTheWalk) {
  HistoryOptions opt;
  opt.max_commits = 2;  // README commit + the fix
  auto h = read_history(repo_, opt, Redactor());
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->stats.commits_walked, 2);
  EXPECT_TRUE(h->stats.truncated);
  ASSERT_EQ(h->changes.size(), 1u);
  EXPECT_EQ(h->changes[0].qualified_name, "clamp");
  opt.max_commits = 1;
  auto h1 = read_history(repo_, opt, Redactor());
  ASSERT_TRUE(h1.is_ok());
  EXPECT_TRUE(h1->changes.empty());
}

TEST_F(GitHistoryTest, FixExampleInHarvestOutput) {
  std::string out = ::testing::TempDir() + "/harvest_git_out";
  HarvestOptions opt;
  opt.examples.min_complexity = 1;
  opt.examples.min_lines = 1;
  auto s = harvest(repo_, out, opt, nullptr);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  auto text = read_file(out + "/examples.jsonl");
  ASSERT_TRUE(text.is_ok());
  std::istringstream in(*text);
  std::string line;
  std::vector<nlohmann::json> fixes;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["kind"] == "fix") fixes.push_back(j);
  }
  ASSERT_EQ(fixes.size(), 1u);
  const auto& ex = fixes[0];
  EXPECT_EQ(ex["provenance"]["source"], "commit");
  EXPECT_EQ(ex["provenance"]["commit"], fix_commit_);
  EXPECT_EQ(ex["provenance"]["file"], "calc.py");
  EXPECT_GT(ex["provenance"]["node_id"].get<int>(), 0);  // clamp still exists at HEAD
  EXPECT_EQ(ex["messages"][1]["content"],
            std::string("`clamp` in `calc.py` has a bug. Find it and fix it; return the corrected code.\n\n```python\n") +
                kClampBuggy + "\n```");
  std::string answer = ex["messages"][2]["content"];
  EXPECT_TRUE(answer.starts_with("Fix clamp returning low for values above high\n\nReported by user_")) << answer;
  EXPECT_TRUE(answer.ends_with(std::string("```python\n") + kClampFixed + "\n```")) << answer;
  auto report = nlohmann::json::parse(s->report_json);
  EXPECT_EQ(report["history"]["commits_walked"], 4);
  EXPECT_EQ(report["history"]["function_changes"], 2);
  EXPECT_EQ(report["history"]["fix_examples"], 1);
}

TEST(GitHistoryPlainTest, NotAGitRepoIsEmpty) {
  std::string dir = ::testing::TempDir() + "/harvest_not_git";
  fs::create_directories(dir);
  auto h = read_history(dir, {}, Redactor());
  ASSERT_TRUE(h.is_ok());
  EXPECT_FALSE(h->stats.is_git_repo);
  EXPECT_TRUE(h->changes.empty());
}

TEST(GitHistoryPlainTest, FixWords) {
  EXPECT_TRUE(looks_like_fix("Fix typo in docs"));
  EXPECT_TRUE(looks_like_fix("parser: resolve REGRESSION from #12"));
  EXPECT_TRUE(looks_like_fix("Handle off-by-one in window"));
  EXPECT_TRUE(looks_like_fix("hotfix: null deref"));
  EXPECT_FALSE(looks_like_fix("Add prefix handling"));
  EXPECT_FALSE(looks_like_fix("debugger support"));
  EXPECT_FALSE(looks_like_fix("Refactor mean"));
}

}  // namespace
}  // namespace tl::harvest
