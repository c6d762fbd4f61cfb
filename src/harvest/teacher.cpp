// The teacher client (see teacher.h): one blocking cpp-httplib client, a content-addressed disk
// cache, and a token budget. Sequential on purpose: teacher endpoints are rate-limited far below what
// parallel requests would need, and the cache makes re-runs cheap.
#include "harvest/teacher.h"

#include <httplib.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file.h"

namespace tl::harvest {

namespace {

using json = nlohmann::json;

constexpr const char* kTeacherSystem =
    "You write answers for training a coding assistant about one specific codebase. You are given a question "
    "and verified facts (written by a tool that analysed the code graph). Answer the question clearly and "
    "helpfully using only these facts: do not invent functions, files, behaviour or numbers that the facts "
    "do not state. Keep code blocks exactly as given.";

struct Endpoint {
  std::string origin;  // scheme://host[:port]
  std::string path;    // /v1/chat/completions (or prefix + /chat/completions)
};

Result<Endpoint> parse_url(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos || (url.compare(0, scheme, "http") != 0 && url.compare(0, scheme, "https") != 0))
    return invalid_argument("teacher.url: expected http://host[:port][/v1], got '{}'", url);
  size_t slash = url.find('/', scheme + 3);
  Endpoint e;
  e.origin = url.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (e.origin.size() <= scheme + 3) return invalid_argument("teacher.url: no host in '{}'", url);
  e.path = (prefix.ends_with("/v1") ? prefix : prefix + "/v1") + "/chat/completions";
  return e;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

std::string cache_key(const std::string& model, const std::string& payload) {
  // Two independent 64-bit hashes: a collision would silently reuse another example's answer.
  std::string a = model + '\0' + payload;
  return fmt::format("{:016x}{:016x}", fnv1a(a), fnv1a("tuneloop-teacher\n" + a));
}

}  // namespace

Status validate_teacher(const TeacherOptions& o) {
  if (!o.enabled()) return Status::ok();
  TL_TRY(parse_url(o.url));
  if (o.model.empty()) return invalid_argument("teacher.model: required when teacher.url is set");
  if (o.budget_tokens < 0) return invalid_argument("teacher.budget_tokens: must be >= 0, got {}", o.budget_tokens);
  if (!o.api_key_env.empty() && std::getenv(o.api_key_env.c_str()) == nullptr)
    return invalid_argument("teacher.api_key_env: environment variable '{}' is not set", o.api_key_env);
  for (const auto& k : o.kinds) {
    if (!all_example_kinds().count(k)) return invalid_argument("teacher.kinds: unknown example kind '{}'", k);
  }
  return Status::ok();
}

TeacherStats apply_teacher(std::vector<Example>& examples, const TeacherOptions& o) {
  TeacherStats st;
  if (!o.enabled()) return st;
  auto ep = parse_url(o.url);
  if (!ep.is_ok()) return st;  // validate_teacher reports this before harvest starts
  httplib::Client client(ep->origin);
  client.set_connection_timeout(o.timeout_s, 0);
  client.set_read_timeout(o.timeout_s, 0);
  client.set_write_timeout(o.timeout_s, 0);
  httplib::Headers headers;
  if (!o.api_key_env.empty()) {
    if (const char* key = std::getenv(o.api_key_env.c_str())) headers.emplace("Authorization", std::string("Bearer ") + key);
  }
  std::error_code ec;
  if (!o.cache_dir.empty()) std::filesystem::create_directories(o.cache_dir, ec);
  int consecutive_connection_failures = 0;

  auto fail = [&](const std::string& reason) {
    ++st.failures;
    ++st.failure_reasons[reason];
  };
  for (auto& ex : examples) {
    if (!o.kinds.count(ex.kind) || !ex.messages_json.empty()) continue;
    ++st.eligible;
    std::string prompt = "Question:\n" + ex.user + "\n\nFacts:\n" + ex.assistant +
                         "\n\nWrite the answer to the question using only these facts.";
    std::string key = cache_key(o.model, std::string(kTeacherSystem) + "\n" + prompt);
    std::string cache_path = o.cache_dir.empty() ? "" : (std::filesystem::path(o.cache_dir) / (key + ".json")).string();
    if (!cache_path.empty()) {
      if (auto cached = read_file(cache_path); cached.is_ok()) {
        json c = json::parse(*cached, nullptr, false);
        if (c.is_object() && c.contains("content") && c["content"].is_string() && !c["content"].get<std::string>().empty()) {
          ex.assistant = c["content"].get<std::string>();
          ex.provenance.teacher = o.model;
          ++st.cache_hits;
          ++st.rewritten;
          continue;
        }
      }
    }
    if (consecutive_connection_failures >= 3) {
      fail("unreachable");
      continue;
    }
    if (st.tokens_used >= o.budget_tokens) {
      ++st.budget_skipped;
      continue;
    }
    json req = {{"model", o.model},
                {"messages", json::array({{{"role", "system"}, {"content", kTeacherSystem}},
                                          {{"role", "user"}, {"content", prompt}}})},
                {"temperature", 0},
                {"max_tokens", o.max_tokens}};
    ++st.requests;
    auto res = client.Post(ep->path.c_str(), headers, req.dump(-1, ' ', false, json::error_handler_t::replace),
                           "application/json");
    if (!res) {
      ++consecutive_connection_failures;
      fail("connection");
      continue;
    }
    consecutive_connection_failures = 0;
    if (res->status != 200) {
      fail("http_" + std::to_string(res->status));
      continue;
    }
    json body = json::parse(res->body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("choices") || !body["choices"].is_array() ||
        body["choices"].empty() || !body["choices"][0].contains("message") ||
        !body["choices"][0]["message"].contains("content")) {
      fail("bad_json");
      continue;
    }
    const json& content = body["choices"][0]["message"]["content"];
    int64_t tokens = 0;
    if (body.contains("usage") && body["usage"].is_object() && body["usage"].contains("total_tokens") &&
        body["usage"]["total_tokens"].is_number_integer())
      tokens = body["usage"]["total_tokens"].get<int64_t>();
    else
      tokens = static_cast<int64_t>((prompt.size() + res->body.size()) / 4);
    st.tokens_used += tokens;
    if (!content.is_string() || content.get<std::string>().find_first_not_of(" \n\t") == std::string::npos) {
      fail("empty");
      continue;
    }
    ex.assistant = content.get<std::string>();
    ex.provenance.teacher = o.model;
    ++st.rewritten;
    if (!cache_path.empty()) {
      json c = {{"model", o.model}, {"content", ex.assistant}, {"tokens", tokens}};
      (void)write_file_atomic(cache_path, c.dump());  // a cache write failure only costs a future request
    }
  }
  return st;
}

}  // namespace tl::harvest
