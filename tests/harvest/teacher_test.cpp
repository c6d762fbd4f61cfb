// Teacher model against a fake OpenAI-compatible server started inside the test on 127.0.0.1 (cpp-httplib):
// answers replaced for eligible kinds only, an HTTP 500 falls back to the deterministic answer and is
// counted, the token budget stops requests, the disk cache makes a re-run free, the API key is sent,
// and an unreachable endpoint is given up after three connection failures.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "harvest/teacher.h"

namespace tl::harvest {
namespace {

class FakeOpenAi {
 public:
  FakeOpenAi() {
    server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      if (req.get_header_value("Authorization") != "Bearer sekret") {
        res.status = 401;
        return;
      }
      auto body = nlohmann::json::parse(req.body);
      std::string prompt = body["messages"][1]["content"];
      if (body["model"] != "fake-model" || prompt.find("FAIL") != std::string::npos) {
        res.status = 500;
        res.set_content("{\"error\":{\"message\":\"boom\"}}", "application/json");
        return;
      }
      // "Question:\n<first line>..." → "Rich: <first line>"
      std::string q = prompt.substr(prompt.find('\n') + 1);
      q = q.substr(0, q.find('\n'));
      nlohmann::json out = {{"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", "Rich: " + q}}}}}},
                            {"usage", {{"total_tokens", 100}}}};
      res.set_content(out.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~FakeOpenAi() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

std::vector<Example> make_examples() {
  std::vector<Example> v;
  auto add = [&](const char* kind, const char* user, const char* answer) {
    Example ex;
    ex.kind = kind;
    ex.user = user;
    ex.assistant = answer;
    v.push_back(ex);
  };
  add("explain", "Q1", "A1");
  add("explain", "Q2 FAIL", "A2");
  add("review", "Q3", "A3");
  add("role", "Q4", "A4");
  add("impact", "Q5", "A5");
  add("implement", "Q6", "A6");  // code answers are never rewritten by default
  return v;
}

TEST(TeacherTest, RewritesWithinBudgetFallsBackAndCaches) {
  setenv("TL_TEST_TEACHER_KEY", "sekret", 1);
  FakeOpenAi server;
  std::string cache = ::testing::TempDir() + "/harvest_teacher_cache";
  std::filesystem::remove_all(cache);
  TeacherOptions o;
  o.url = server.url();
  o.model = "fake-model";
  o.api_key_env = "TL_TEST_TEACHER_KEY";
  o.budget_tokens = 250;
  o.cache_dir = cache;
  ASSERT_TRUE(validate_teacher(o).is_ok());

  auto ex = make_examples();
  TeacherStats st = apply_teacher(ex, o);
  EXPECT_EQ(st.eligible, 5);
  EXPECT_EQ(st.requests, 4);  // Q1, Q2 (500), Q3, Q4; then 300 >= 250 tokens
  EXPECT_EQ(st.rewritten, 3);
  EXPECT_EQ(st.failures, 1);
  EXPECT_EQ(st.failure_reasons, (std::map<std::string, int64_t>{{"http_500", 1}}));
  EXPECT_EQ(st.budget_skipped, 1);
  EXPECT_EQ(st.tokens_used, 300);
  EXPECT_EQ(st.cache_hits, 0);
  EXPECT_EQ(ex[0].assistant, "Rich: Q1");
  EXPECT_EQ(ex[0].provenance.teacher, "fake-model");
  EXPECT_EQ(ex[1].assistant, "A2");  // fell back
  EXPECT_EQ(ex[1].provenance.teacher, "");
  EXPECT_EQ(ex[3].assistant, "Rich: Q4");
  EXPECT_EQ(ex[4].assistant, "A5");  // over budget
  EXPECT_EQ(ex[5].assistant, "A6");  // not an eligible kind
  EXPECT_EQ(server.requests(), 4);

  // Re-run with the same cache (and the /v1 form of the URL): cached answers cost no request or token.
  o.url = server.url() + "/v1";
  auto again = make_examples();
  TeacherStats st2 = apply_teacher(again, o);
  EXPECT_EQ(st2.cache_hits, 3);
  EXPECT_EQ(st2.requests, 2);  // Q2 fails again, Q5 now fits the budget
  EXPECT_EQ(st2.rewritten, 4);
  EXPECT_EQ(st2.tokens_used, 100);
  EXPECT_EQ(again[4].assistant, "Rich: Q5");
  EXPECT_EQ(server.requests(), 6);
}

TEST(TeacherTest, UnreachableEndpointGivesUpAfterThreeFailures) {
  TeacherOptions o;
  o.url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.model = "m";
  o.timeout_s = 2;
  auto ex = make_examples();
  TeacherStats st = apply_teacher(ex, o);
  EXPECT_EQ(st.requests, 3);
  EXPECT_EQ(st.failures, 5);
  EXPECT_EQ(st.failure_reasons, (std::map<std::string, int64_t>{{"connection", 3}, {"unreachable", 2}}));
  EXPECT_EQ(ex[0].assistant, "A1");
}

TEST(TeacherTest, ValidationNamesTheField) {
  TeacherOptions o;
  o.url = "ftp://example.com";
  o.model = "m";
  auto s = validate_teacher(o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message(), "teacher.url: expected http://host[:port][/v1], got 'ftp://example.com'");
  o.url = "http://127.0.0.1:8080";
  o.api_key_env = "TL_SURELY_UNSET_VARIABLE";
  s = validate_teacher(o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message(), "teacher.api_key_env: environment variable 'TL_SURELY_UNSET_VARIABLE' is not set");
  o.api_key_env.clear();
  o.kinds = {"explain", "poem"};
  EXPECT_EQ(validate_teacher(o).message(), "teacher.kinds: unknown example kind 'poem'");
}

}  // namespace
}  // namespace tl::harvest
