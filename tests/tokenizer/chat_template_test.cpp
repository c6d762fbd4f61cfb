// ChatTemplate against the jinja2 reference: every real template in shared testdata x every
// conversation of tests/tokenizer/chat_corpus x add_generation_prompt, and the feature templates of
// chat_template_cases.json, must render byte-identically to tests/reference/chat_template_reference.py
// (which reproduces transformers' environment) or fail with the same error. Expected values are
// written by the ctest fixture `reference_chat_template_fixtures`; nothing here is hand-written
// except the tuneloop-only behaviour at the end (unsupported constructs, limits, API edges).
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace {

using nlohmann::ordered_json;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const ordered_json& expected() {
  static const ordered_json data = [] {
    const std::string path = std::string(TL_FIXTURES_DIR) + "/chat_templates/expected.json";
    if (!std::filesystem::exists(path)) {
      ADD_FAILURE() << path << " is missing: run `ctest -R reference_chat_template_fixtures` (needs python3-jinja2)";
      return ordered_json::object();
    }
    return ordered_json::parse(read_text(path));
  }();
  return data;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Compares one render (or failure) with the reference record; returns an empty string on a match.
std::string check_record(const tl::ChatTemplate* tmpl, const tl::Status& parse_status, const ordered_json& record,
                         const std::string& origin) {
  tl::ChatTemplateOptions options;
  options.now_utc = expected()["now_utc"].get<int64_t>();
  std::string got;
  tl::Status status = parse_status;
  if (status.is_ok()) {
    auto r = tmpl->render(record["context"], options);
    if (r.is_ok()) got = *r;
    status = r.status();
  }
  if (record["ok"].get<bool>()) {
    if (!status.is_ok()) return "expected output " + record["output"].dump() + ", got error: " + status.message();
    if (got != record["output"].get<std::string>()) {
      return "output differs\n  expected: " + record["output"].dump() + "\n  got:      " + ordered_json(got).dump();
    }
    return "";
  }
  const std::string kind = record["error_kind"].get<std::string>();
  const std::string want = record["error"].get<std::string>();
  if (status.is_ok()) return "expected " + kind + " error '" + want + "', got output " + ordered_json(got).dump();
  const std::string& msg = status.message();
  if (kind == "raise_exception") {
    if (msg != want) return "expected raise_exception message '" + want + "', got '" + msg + "'";
    return "";
  }
  if (kind == "syntax") {
    const std::string prefix = origin + ":" + std::to_string(record["line"].get<int>()) + ":";
    if (msg.rfind(prefix, 0) != 0 || !ends_with(msg, ": " + want)) {
      return "expected syntax error '" + prefix + "<col>: " + want + "', got '" + msg + "'";
    }
    return "";
  }
  if (msg.rfind(origin + ":", 0) != 0 || !ends_with(msg, ": " + want)) {
    return "expected runtime error '" + origin + ":<line>: " + want + "', got '" + msg + "'";
  }
  return "";
}

TEST(ChatTemplate, RealTemplatesMatchJinja2) {
  const auto& records = expected()["templates"];
  ASSERT_FALSE(records.empty());
  std::map<std::string, tl::Result<tl::ChatTemplate>> templates;
  size_t passed = 0;
  std::map<std::string, size_t> per_template_fail;
  for (const auto& record : records) {
    const std::string name = record["template"].get<std::string>();
    auto it = templates.find(name);
    if (it == templates.end()) {
      const std::string path = std::string(TL_SHARED_TESTDATA) + "/chat_templates/" + name + ".jinja";
      it = templates.emplace(name, tl::ChatTemplate::parse(read_text(path), name)).first;
    }
    const tl::ChatTemplate* tmpl = it->second.is_ok() ? &*it->second : nullptr;
    const std::string diff = check_record(tmpl, it->second.status(), record, name);
    if (diff.empty()) {
      ++passed;
    } else {
      ++per_template_fail[name];
      ADD_FAILURE() << name << " x " << record["conversation"].get<std::string>()
                    << " (add_generation_prompt=" << record["add_generation_prompt"].get<bool>() << "): " << diff;
    }
  }
  std::cout << "[chat templates] " << passed << "/" << records.size() << " template x conversation cases match jinja2\n";
  // Every template in the shared folder is covered by the reference.
  size_t jinja_files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(TL_SHARED_TESTDATA) + "/chat_templates")) {
    if (entry.path().extension() == ".jinja") ++jinja_files;
  }
  EXPECT_EQ(templates.size(), jinja_files);
}

TEST(ChatTemplate, FeatureCasesMatchJinja2) {
  const auto& cases = expected()["cases"];
  ASSERT_FALSE(cases.empty());
  size_t passed = 0;
  for (const auto& record : cases) {
    const std::string name = record["name"].get<std::string>();
    auto parsed = tl::ChatTemplate::parse(record["template"].get<std::string>(), name);
    const std::string diff = check_record(parsed.is_ok() ? &*parsed : nullptr, parsed.status(), record, name);
    if (diff.empty()) {
      ++passed;
    } else {
      ADD_FAILURE() << name << ": " << diff << "\n  template: " << record["template"].dump();
    }
  }
  std::cout << "[chat templates] " << passed << "/" << cases.size() << " feature cases match jinja2\n";
}

// --- tuneloop-only behaviour (no jinja2 counterpart) ----------------------------------------------

TEST(ChatTemplate, UnsupportedConstructsNameTheLine) {
  struct Case {
    const char* source;
    const char* prefix;
  };
  const Case cases[] = {
      {"ok\n{% extends 'base.html' %}", "t:2:4: '{% extends %}' is not supported"},
      {"{% include 'x' %}", "t:1:4: '{% include %}' is not supported"},
      {"a\nb\n{% call foo() %}x{% endcall %}", "t:3:4: '{% call %}' is not supported"},
      {"{% for x in y recursive %}{% endfor %}", "t:1:15: a recursive for loop is not supported"},
      {"\n{{ f(*args) }}", "t:2:6: '*args' / '**kwargs' in a call is not supported"},
      {"{{ x | groupby('a') }}", "t:1:8: the 'groupby' filter is not supported"},
  };
  for (const auto& c : cases) {
    auto r = tl::ChatTemplate::parse(c.source, "t");
    ASSERT_FALSE(r.is_ok()) << c.source;
    EXPECT_EQ(r.status().code(), tl::StatusCode::kUnimplemented) << c.source;
    EXPECT_EQ(r.status().message().rfind(c.prefix, 0), 0u) << r.status().message();
  }
}

TEST(ChatTemplate, SyntaxErrorsCarryLineAndColumn) {
  auto r = tl::ChatTemplate::parse("hello\n  {{ 1 + }}", "my_template");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), tl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "my_template:2:10: unexpected 'end of print statement'") << r.status().message();
}

TEST(ChatTemplate, RuntimeErrorsNameTheLine) {
  auto t = tl::ChatTemplate::parse("a\n{% if true %}\n{{ 1 // 0 }}\n{% endif %}", "rt");
  ASSERT_TRUE(t.is_ok());
  auto r = t->render(ordered_json::object());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "rt:3: integer division or modulo by zero");
}

TEST(ChatTemplate, LimitsStopHostileTemplates) {
  tl::ChatTemplateOptions options;
  options.max_steps = 100000;
  auto loops = tl::ChatTemplate::parse("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  ASSERT_TRUE(loops.is_ok());
  auto r1 = loops->render(ordered_json::object(), options);
  ASSERT_FALSE(r1.is_ok());
  EXPECT_EQ(r1.status().code(), tl::StatusCode::kResourceExhausted);
  EXPECT_NE(r1.status().message().find("step limit"), std::string::npos) << r1.status().message();

  options = {};
  options.max_output_bytes = 1000;
  auto big = tl::ChatTemplate::parse("{% for i in range(1000) %}0123456789{% endfor %}");
  ASSERT_TRUE(big.is_ok());
  auto r2 = big->render(ordered_json::object(), options);
  ASSERT_FALSE(r2.is_ok());
  EXPECT_EQ(r2.status().code(), tl::StatusCode::kResourceExhausted);
  auto mul = tl::ChatTemplate::parse("{{ 'x' * 100000000000 }}");
  ASSERT_TRUE(mul.is_ok());
  EXPECT_EQ(mul->render(ordered_json::object(), options).status().code(), tl::StatusCode::kResourceExhausted);

  auto recurse = tl::ChatTemplate::parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "rec");
  ASSERT_TRUE(recurse.is_ok());
  auto r3 = recurse->render(ordered_json::object());
  ASSERT_FALSE(r3.is_ok());
  EXPECT_NE(r3.status().message().find("macro calls nest deeper than"), std::string::npos) << r3.status().message();

  auto deep = tl::ChatTemplate::parse("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}", "deep");
  ASSERT_FALSE(deep.is_ok());
  EXPECT_NE(deep.status().message().find("nests deeper than"), std::string::npos) << deep.status().message();
}

TEST(ChatTemplate, ContextKeyOrderAndApiEdges) {
  auto t = tl::ChatTemplate::parse("{{ d | tojson }}|{{ tools }}|{{ add_generation_prompt }}");
  ASSERT_TRUE(t.is_ok());
  // ordered_json keeps the caller's order (as Python's json.loads); nlohmann::json sorts keys.
  EXPECT_EQ(*t->render(ordered_json::parse(R"({"d": {"b": 1, "a": 2}})")), "{\"b\": 1, \"a\": 2}|None|False");
  EXPECT_EQ(*t->render(nlohmann::json::parse(R"({"d": {"b": 1, "a": 2}})")), "{\"a\": 2, \"b\": 1}|None|False");
  EXPECT_EQ(*t->render_json(R"({"d": [1.5, "x"], "add_generation_prompt": true})"), "[1.5, \"x\"]|None|True");
  auto bad = t->render_json("{not json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), tl::StatusCode::kInvalidArgument);
  auto not_object = t->render(ordered_json::array());
  ASSERT_FALSE(not_object.is_ok());
  EXPECT_EQ(not_object.status().message(), "chat_template: render context must be a JSON object");
}

}  // namespace
