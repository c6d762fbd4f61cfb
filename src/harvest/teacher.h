// Teacher model: optional richer answers from any OpenAI-compatible `/v1/chat/completions` endpoint.
//
// The deterministic builders stay the source of truth: for each example of a configured kind, the
// question and the builder's answer (the graph facts) go to the teacher, which is asked to rewrite the
// answer using only those facts. What comes back replaces the answer; anything that goes wrong —
// connection refused, HTTP error, timeout, malformed JSON, empty content, budget spent — leaves the
// deterministic answer in place and is counted in the report. A harvest never fails because of the
// teacher.
//
// Responses are cached on disk under `cache_dir` by a content hash of (model, prompt), so a re-run pays
// nothing for examples it has seen. `budget_tokens` caps the tokens spent on requests (usage.total_tokens
// from the response, or ~chars/4 when the server reports none); cache hits are free. After three
// consecutive connection failures the endpoint is treated as down and the remaining examples are not
// sent (counted as failures "unreachable").
//
// Usage:
//   tl::harvest::TeacherOptions t{.url = "http://127.0.0.1:8080", .model = "qwen2.5-7b-instruct"};
//   tl::harvest::TeacherStats st = tl::harvest::apply_teacher(examples, t);
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "harvest/examples.h"

namespace tl::harvest {

struct TeacherOptions {
  std::string url;          // base URL: "http://host:port" or "http://host:port/v1"; empty = no teacher
  std::string model;        // sent as `model`
  std::string api_key_env;  // name of the environment variable holding the bearer token (optional)
  int64_t budget_tokens = 200000;
  std::string cache_dir;  // empty: no cache
  std::set<std::string> kinds = {"explain", "review", "role", "impact", "synthesis"};
  int timeout_s = 60;
  int max_tokens = 1024;
  bool enabled() const { return !url.empty(); }
};

struct TeacherStats {
  int64_t eligible = 0;        // examples of a configured kind
  int64_t requests = 0;        // HTTP requests sent
  int64_t cache_hits = 0;
  int64_t rewritten = 0;       // answers replaced (from a request or the cache)
  int64_t failures = 0;        // fell back to the deterministic answer
  int64_t budget_skipped = 0;  // not sent: budget spent
  int64_t tokens_used = 0;
  std::map<std::string, int64_t> failure_reasons;  // "http_500", "connection", "bad_json", "empty", "unreachable"
};

// Checks the options (URL shape, model, api key variable present) before any example is built.
Status validate_teacher(const TeacherOptions& options);

// Rewrites the answers of eligible examples in place (provenance.teacher = model on success).
TeacherStats apply_teacher(std::vector<Example>& examples, const TeacherOptions& options);

}  // namespace tl::harvest
