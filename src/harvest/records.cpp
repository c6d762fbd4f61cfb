// Record importers (see records.h; schemas in docs/harvest_records.md).
//
// Two passes: every line is parsed, redacted and validated into a typed record (a bad line becomes a
// RecordIssue and nothing else), then the builders run over the accepted records — knowledge edges and
// feedback retries refer to other records, so they can only be resolved once everything is read.
// Builders are deterministic: they restate the records' own words in a fixed structure.
#include "harvest/records.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "core/file.h"

namespace tl::harvest {

namespace {

using json = nlohmann::ordered_json;

// A validation failure: the reason that goes into the report (file and line are added by the caller).
struct Bad {
  std::string reason;
};

void redact_strings(json& j, const Redactor& r) {
  if (j.is_string()) {
    j = r.redact(j.get<std::string>(), nullptr);
  } else if (j.is_array() || j.is_object()) {
    for (auto& v : j) redact_strings(v, r);
  }
}

std::optional<Bad> need_string(const json& j, const char* type, const char* field, std::string& out,
                               bool required = true) {
  if (!j.contains(field) || j[field].is_null()) {
    if (!required) return std::nullopt;
    return Bad{fmt::format("{}: missing field '{}'", type, field)};
  }
  if (!j[field].is_string()) return Bad{fmt::format("{}: field '{}' must be a string", type, field)};
  out = j[field].get<std::string>();
  if (required && out.empty()) return Bad{fmt::format("{}: field '{}' must not be empty", type, field)};
  return std::nullopt;
}

std::optional<Bad> need_one_of(const json& j, const char* type, const char* field, std::string& out,
                               const std::vector<std::string>& allowed, bool required = true) {
  if (auto b = need_string(j, type, field, out, required)) return b;
  if (!required && out.empty()) return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), out) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    return Bad{fmt::format("{}: field '{}' is '{}', expected one of: {}", type, field, out, list)};
  }
  return std::nullopt;
}

struct Origin {
  std::string file;
  int line = 0;
};

struct Knowledge {
  Origin at;
  std::string id, kind, title, content;
  double strength = 0;
  std::vector<std::pair<std::string, std::string>> edges;  // (type, target id)
};

struct Subtask {
  std::string id, title, detail;
  std::vector<std::string> depends_on;
};
struct Task {
  Origin at;
  std::string id, goal, context, outcome;
  std::vector<Subtask> subtasks;
};

struct Decision {
  Origin at;
  std::string id, question, context, chosen, rationale, outcome;
  std::vector<std::string> options;
};

struct ToolSession {
  Origin at;
  std::string id, outcome;
  json messages;  // OpenAI format, validated
  json tools;     // OpenAI `tools` array (may be empty)
};

struct Routing {
  std::string intent, effort, tier;
  bool success = false;
  std::optional<double> latency_ms, cost_usd;
};

struct Feedback {
  Origin at;
  std::string id, prompt, response, verdict, retry_of;
  int rating = 0;  // 0: none
};

struct Records {
  std::vector<Knowledge> knowledge;
  std::vector<Task> tasks;
  std::vector<Decision> decisions;
  std::vector<ToolSession> sessions;
  std::vector<Routing> routing;
  std::vector<Feedback> feedback;
  std::map<std::string, std::map<std::string, int>> ids;  // type → id → line, for duplicate detection
};

std::optional<Bad> check_id(Records& recs, const std::string& type, const std::string& id, const Origin& at) {
  auto& seen = recs.ids[type];
  auto it = seen.find(id);
  if (it != seen.end()) return Bad{fmt::format("{}: duplicate id '{}' (first on line {})", type, id, it->second)};
  seen[id] = at.line;
  return std::nullopt;
}

std::optional<Bad> parse_knowledge(const json& j, const Origin& at, const RecordsOptions& o, Records& recs,
                                   int64_t& weak) {
  Knowledge k;
  k.at = at;
  if (auto b = need_string(j, "knowledge", "id", k.id)) return b;
  if (auto b = need_one_of(j, "knowledge", "kind", k.kind, {"episodic", "semantic", "procedural"})) return b;
  if (auto b = need_string(j, "knowledge", "content", k.content)) return b;
  if (auto b = need_string(j, "knowledge", "title", k.title, false)) return b;
  if (!j.contains("strength") || !j["strength"].is_number() || j["strength"].get<double>() < 0 ||
      j["strength"].get<double>() > 1)
    return Bad{"knowledge: field 'strength' must be a number in [0, 1]"};
  k.strength = j["strength"].get<double>();
  if (j.contains("edges")) {
    if (!j["edges"].is_array()) return Bad{"knowledge: field 'edges' must be an array"};
    for (size_t i = 0; i < j["edges"].size(); ++i) {
      const json& e = j["edges"][i];
      std::string type, target;
      std::string where = fmt::format("knowledge edges[{}]", i);
      if (!e.is_object()) return Bad{where + ": must be an object"};
      if (auto b = need_one_of(e, where.c_str(), "type", type, {"DERIVED_FROM", "REINFORCES", "RELATED"})) return b;
      if (auto b = need_string(e, where.c_str(), "target", target)) return b;
      k.edges.emplace_back(type, target);
    }
  }
  if (auto b = check_id(recs, "knowledge", k.id, at)) return b;
  if (k.strength < o.min_strength) {
    ++weak;
    return std::nullopt;
  }
  recs.knowledge.push_back(std::move(k));
  return std::nullopt;
}

std::optional<Bad> parse_task(const json& j, const Origin& at, Records& recs) {
  Task t;
  t.at = at;
  if (auto b = need_string(j, "task", "id", t.id)) return b;
  if (auto b = need_string(j, "task", "goal", t.goal)) return b;
  if (auto b = need_string(j, "task", "context", t.context, false)) return b;
  if (auto b = need_one_of(j, "task", "outcome", t.outcome, {"success", "partial", "failure"}, false)) return b;
  if (!j.contains("subtasks") || !j["subtasks"].is_array() || j["subtasks"].empty())
    return Bad{"task: field 'subtasks' must be a non-empty array"};
  std::set<std::string> earlier;
  for (size_t i = 0; i < j["subtasks"].size(); ++i) {
    const json& s = j["subtasks"][i];
    std::string where = fmt::format("task subtasks[{}]", i);
    if (!s.is_object()) return Bad{where + ": must be an object"};
    Subtask st;
    if (auto b = need_string(s, where.c_str(), "id", st.id)) return b;
    if (auto b = need_string(s, where.c_str(), "title", st.title)) return b;
    if (auto b = need_string(s, where.c_str(), "detail", st.detail, false)) return b;
    if (s.contains("depends_on")) {
      if (!s["depends_on"].is_array()) return Bad{where + ": field 'depends_on' must be an array of subtask ids"};
      for (const auto& d : s["depends_on"]) {
        if (!d.is_string()) return Bad{where + ": field 'depends_on' must be an array of subtask ids"};
        if (!earlier.count(d.get<std::string>()))
          return Bad{fmt::format("task: subtask '{}' depends on '{}', which is not an earlier subtask", st.id,
                                 d.get<std::string>())};
        st.depends_on.push_back(d.get<std::string>());
      }
    }
    if (!earlier.insert(st.id).second) return Bad{fmt::format("task: duplicate subtask id '{}'", st.id)};
    t.subtasks.push_back(std::move(st));
  }
  if (auto b = check_id(recs, "task", t.id, at)) return b;
  recs.tasks.push_back(std::move(t));
  return std::nullopt;
}

std::optional<Bad> parse_decision(const json& j, const Origin& at, Records& recs) {
  Decision d;
  d.at = at;
  if (auto b = need_string(j, "decision", "id", d.id)) return b;
  if (auto b = need_string(j, "decision", "question", d.question)) return b;
  if (auto b = need_string(j, "decision", "context", d.context, false)) return b;
  if (auto b = need_string(j, "decision", "chosen", d.chosen)) return b;
  if (auto b = need_string(j, "decision", "rationale", d.rationale)) return b;
  if (auto b = need_string(j, "decision", "outcome", d.outcome, false)) return b;
  if (!j.contains("options") || !j["options"].is_array() || j["options"].size() < 2)
    return Bad{"decision: field 'options' must be an array of at least 2 strings"};
  for (const auto& opt : j["options"]) {
    if (!opt.is_string()) return Bad{"decision: field 'options' must be an array of at least 2 strings"};
    d.options.push_back(opt.get<std::string>());
  }
  if (std::find(d.options.begin(), d.options.end(), d.chosen) == d.options.end())
    return Bad{fmt::format("decision: 'chosen' ('{}') is not one of 'options'", d.chosen)};
  if (auto b = check_id(recs, "decision", d.id, at)) return b;
  recs.decisions.push_back(std::move(d));
  return std::nullopt;
}

std::optional<Bad> parse_session(const json& j, const Origin& at, const ExampleOptions& eo, Records& recs) {
  ToolSession s;
  s.at = at;
  if (auto b = need_string(j, "tool_session", "id", s.id)) return b;
  if (auto b = need_one_of(j, "tool_session", "outcome", s.outcome, {"success", "partial", "failure"}, false)) return b;
  std::set<std::string> tool_names;
  s.tools = json::array();
  if (j.contains("tools")) {
    if (!j["tools"].is_array()) return Bad{"tool_session: field 'tools' must be an array"};
    for (size_t i = 0; i < j["tools"].size(); ++i) {
      const json& t = j["tools"][i];
      std::string where = fmt::format("tool_session tools[{}]", i);
      std::string name, desc;
      if (!t.is_object()) return Bad{where + ": must be an object"};
      if (auto b = need_string(t, where.c_str(), "name", name)) return b;
      if (auto b = need_string(t, where.c_str(), "description", desc, false)) return b;
      json fn = {{"name", name}};
      if (!desc.empty()) fn["description"] = desc;
      if (t.contains("parameters")) {
        if (!t["parameters"].is_object()) return Bad{where + ": field 'parameters' must be a JSON schema object"};
        fn["parameters"] = t["parameters"];
      }
      s.tools.push_back({{"type", "function"}, {"function", fn}});
      tool_names.insert(name);
    }
  }
  if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
    return Bad{"tool_session: field 'messages' must be a non-empty array"};
  s.messages = json::array();
  bool has_system = false, has_user = false;
  int calls = 0;
  std::set<std::string> pending, all_ids;
  for (size_t i = 0; i < j["messages"].size(); ++i) {
    const json& m = j["messages"][i];
    std::string where = fmt::format("tool_session messages[{}]", i);
    if (!m.is_object()) return Bad{where + ": must be an object"};
    std::string role, content;
    if (auto b = need_one_of(m, where.c_str(), "role", role, {"system", "user", "assistant", "tool"})) return b;
    if (auto b = need_string(m, where.c_str(), "content", content, role != "assistant")) return b;
    if (role != "tool" && !pending.empty())
      return Bad{fmt::format("{}: tool call '{}' has no tool result before this {} message", where, *pending.begin(),
                             role)};
    if (role == "system") {
      if (i != 0) return Bad{where + ": a system message must come first"};
      has_system = true;
      s.messages.push_back({{"role", "system"}, {"content", content}});
    } else if (role == "user") {
      has_user = true;
      s.messages.push_back({{"role", "user"}, {"content", content}});
    } else if (role == "assistant") {
      json out = {{"role", "assistant"}, {"content", content.empty() ? json(nullptr) : json(content)}};
      if (m.contains("tool_calls")) {
        if (!m["tool_calls"].is_array() || m["tool_calls"].empty())
          return Bad{where + ": field 'tool_calls' must be a non-empty array"};
        json tc = json::array();
        for (size_t k = 0; k < m["tool_calls"].size(); ++k) {
          const json& c = m["tool_calls"][k];
          std::string cw = fmt::format("{}.tool_calls[{}]", where, k);
          std::string id, name;
          if (!c.is_object()) return Bad{cw + ": must be an object"};
          if (auto b = need_string(c, cw.c_str(), "id", id)) return b;
          if (auto b = need_string(c, cw.c_str(), "name", name)) return b;
          if (!tool_names.empty() && !tool_names.count(name))
            return Bad{fmt::format("{}: tool '{}' is not declared in 'tools'", cw, name)};
          if (!c.contains("arguments") || !(c["arguments"].is_object() || c["arguments"].is_string()))
            return Bad{cw + ": field 'arguments' must be an object (or a JSON string)"};
          if (!all_ids.insert(id).second) return Bad{fmt::format("{}: duplicate tool call id '{}'", cw, id)};
          std::string args = c["arguments"].is_string() ? c["arguments"].get<std::string>() : c["arguments"].dump();
          tc.push_back({{"id", id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", args}}}});
          pending.insert(id);
          ++calls;
        }
        out["tool_calls"] = tc;
      } else if (content.empty()) {
        return Bad{where + ": an assistant message needs 'content' or 'tool_calls'"};
      }
      s.messages.push_back(out);
    } else {  // tool
      std::string call_id;
      if (auto b = need_string(m, where.c_str(), "tool_call_id", call_id)) return b;
      if (!pending.erase(call_id))
        return Bad{fmt::format("{}: 'tool_call_id' '{}' answers no open tool call", where, call_id)};
      s.messages.push_back({{"role", "tool"}, {"tool_call_id", call_id}, {"content", content}});
    }
  }
  if (!has_user) return Bad{"tool_session: no user message"};
  if (calls == 0) return Bad{"tool_session: no tool call (not a tool-use session)"};
  const json& last = s.messages.back();
  if (last["role"] != "assistant" || last.contains("tool_calls") || last["content"].is_null())
    return Bad{"tool_session: the last message must be an assistant answer without tool calls"};
  if (!has_system) s.messages.insert(s.messages.begin(), json{{"role", "system"}, {"content", eo.system_prompt}});
  if (auto b = check_id(recs, "tool_session", s.id, at)) return b;
  recs.sessions.push_back(std::move(s));
  return std::nullopt;
}

std::optional<Bad> parse_routing(const json& j, Records& recs) {
  Routing r;
  std::string outcome;
  if (auto b = need_string(j, "routing", "intent", r.intent)) return b;
  if (auto b = need_one_of(j, "routing", "effort", r.effort, {"low", "medium", "high"})) return b;
  if (auto b = need_string(j, "routing", "tier", r.tier)) return b;
  if (auto b = need_one_of(j, "routing", "outcome", outcome, {"success", "failure", "escalated"})) return b;
  r.success = outcome == "success";
  for (auto [field, dst] : {std::pair<const char*, std::optional<double>*>{"latency_ms", &r.latency_ms},
                            {"cost_usd", &r.cost_usd}}) {
    if (!j.contains(field) || j[field].is_null()) continue;
    if (!j[field].is_number() || j[field].get<double>() < 0)
      return Bad{fmt::format("routing: field '{}' must be a non-negative number", field)};
    *dst = j[field].get<double>();
  }
  recs.routing.push_back(std::move(r));
  return std::nullopt;
}

std::optional<Bad> parse_feedback(const json& j, const Origin& at, Records& recs) {
  Feedback f;
  f.at = at;
  if (auto b = need_string(j, "feedback", "id", f.id)) return b;
  if (auto b = need_string(j, "feedback", "prompt", f.prompt)) return b;
  if (auto b = need_string(j, "feedback", "response", f.response)) return b;
  if (auto b = need_one_of(j, "feedback", "verdict", f.verdict, {"approved", "rejected"}, false)) return b;
  if (auto b = need_string(j, "feedback", "retry_of", f.retry_of, false)) return b;
  if (j.contains("rating") && !j["rating"].is_null()) {
    if (!j["rating"].is_number_integer() || j["rating"].get<int>() < 1 || j["rating"].get<int>() > 5)
      return Bad{"feedback: field 'rating' must be an integer from 1 to 5"};
    f.rating = j["rating"].get<int>();
  }
  if (f.rating == 0 && f.verdict.empty()) return Bad{"feedback: needs 'rating' or 'verdict'"};
  if (!f.retry_of.empty() && !recs.ids["feedback"].count(f.retry_of))
    return Bad{fmt::format("feedback: 'retry_of' names '{}', which is no earlier feedback record", f.retry_of)};
  if (auto b = check_id(recs, "feedback", f.id, at)) return b;
  recs.feedback.push_back(std::move(f));
  return std::nullopt;
}

// ---- builders ---------------------------------------------------------------------------------
Example record_example(const char* kind, const Origin& at, const std::string& id, const ExampleOptions& eo,
                       double quality) {
  Example ex;
  ex.kind = kind;
  ex.language = "text";
  ex.system = eo.system_prompt;
  ex.provenance.source = "records";
  ex.provenance.file = at.file;
  ex.provenance.start_line = ex.provenance.end_line = at.line;
  ex.provenance.record_id = id;
  ex.provenance.quality = quality;
  // Split by record so one record never lands on both sides.
  ex.split = split_for_file(at.file + "#" + id, eo.validation_fraction);
  return ex;
}

void build_synthesis(const Records& recs, const ExampleOptions& eo, RecordsResult& out) {
  std::map<std::string, const Knowledge*> by_id;
  for (const auto& k : recs.knowledge) by_id[k.id] = &k;
  // Labels by direction: "A DERIVED_FROM B" reads "derived from B" on A and "led to A" on B.
  std::map<std::string, std::map<std::string, std::vector<const Knowledge*>>> related;  // id → label → records
  for (const auto& k : recs.knowledge) {
    for (const auto& [type, target] : k.edges) {
      auto it = by_id.find(target);
      if (it == by_id.end() || target == k.id) {
        ++out.dangling_edges;
        continue;
      }
      const char* fwd = type == "DERIVED_FROM" ? "Derived from" : type == "REINFORCES" ? "Reinforces" : "Related";
      const char* back = type == "DERIVED_FROM" ? "Led to" : type == "REINFORCES" ? "Reinforced by" : "Related";
      related[k.id][fwd].push_back(it->second);
      related[target][back].push_back(&k);
    }
  }
  for (const auto& k : recs.knowledge) {
    auto rit = related.find(k.id);
    if (rit == related.end()) continue;
    Example ex = record_example("synthesis", k.at, k.id, eo, std::round(k.strength * 1000.0) / 1000.0);
    std::string subject = k.title.empty() ? k.content : k.title + ": " + k.content;
    ex.user = fmt::format("Synthesize what we know that bears on this {} knowledge:\n\n{}", k.kind, subject);
    size_t n = 0;
    std::string body;
    for (const char* label : {"Derived from", "Led to", "Reinforces", "Reinforced by", "Related"}) {
      auto lit = rit->second.find(label);
      if (lit == rit->second.end()) continue;
      std::vector<const Knowledge*> items = lit->second;
      std::stable_sort(items.begin(), items.end(), [](const Knowledge* a, const Knowledge* b) {
        return a->strength != b->strength ? a->strength > b->strength : a->id < b->id;
      });
      items.erase(std::unique(items.begin(), items.end()), items.end());
      body += fmt::format("\n\n{}:", label);
      for (const Knowledge* o : items) {
        body += fmt::format("\n- ({}, strength {:.2f}) {}", o->kind, o->strength, o->content);
        ++n;
      }
    }
    ex.assistant = fmt::format("This {} knowledge (strength {:.2f}) is connected to {} other record(s).{}", k.kind,
                               k.strength, n, body);
    out.examples.push_back(std::move(ex));
  }
}

void build_tasks(const Records& recs, const ExampleOptions& eo, RecordsResult& out) {
  for (const auto& t : recs.tasks) {
    if (t.outcome == "failure") continue;  // a failed plan is not a plan to teach
    Example ex = record_example("decomposition", t.at, t.id, eo, t.outcome == "partial" ? 0.5 : 1.0);
    ex.user = "Break this task down into subtasks, with their dependencies:\n\n" + t.goal;
    if (!t.context.empty()) ex.user += "\n\nContext: " + t.context;
    std::map<std::string, size_t> number;
    for (size_t i = 0; i < t.subtasks.size(); ++i) {
      const auto& s = t.subtasks[i];
      number[s.id] = i + 1;
      if (i) ex.assistant += "\n";
      ex.assistant += fmt::format("{}. {}", i + 1, s.title);
      if (!s.depends_on.empty()) {
        std::string deps;
        for (const auto& d : s.depends_on) deps += (deps.empty() ? "" : ", ") + std::to_string(number[d]);
        ex.assistant += " (after " + deps + ")";
      }
      if (!s.detail.empty()) ex.assistant += "\n   " + s.detail;
    }
    out.examples.push_back(std::move(ex));
  }
}

void build_decisions(const Records& recs, const ExampleOptions& eo, RecordsResult& out) {
  for (const auto& d : recs.decisions) {
    Example ex = record_example("decision", d.at, d.id, eo, 1.0);
    ex.user = d.question;
    if (!d.context.empty()) ex.user += "\n\nContext: " + d.context;
    ex.user += "\n\nOptions:";
    for (const auto& o : d.options) ex.user += "\n- " + o;
    ex.user += "\n\nWhich option do you choose, and why?";
    ex.assistant = fmt::format("Choose: {}.\n\n{}", d.chosen, d.rationale);
    if (!d.outcome.empty()) ex.assistant += "\n\nOutcome: " + d.outcome;
    out.examples.push_back(std::move(ex));
  }
}

void build_sessions(const Records& recs, const ExampleOptions& eo, RecordsResult& out) {
  for (const auto& s : recs.sessions) {
    if (s.outcome == "failure") continue;
    Example ex = record_example("tool_use", s.at, s.id, eo, s.outcome == "partial" ? 0.5 : 1.0);
    ex.messages_json = s.messages.dump();
    ex.tools_json = s.tools.empty() ? "" : s.tools.dump();
    // Flat fields keep the first user turn and the final answer, for tools that only read those.
    for (const auto& m : s.messages) {
      if (m["role"] == "user" && ex.user.empty()) ex.user = m["content"].get<std::string>();
    }
    ex.system = s.messages[0]["content"].get<std::string>();
    ex.assistant = s.messages.back()["content"].get<std::string>();
    out.examples.push_back(std::move(ex));
  }
}

void build_calibration(const Records& recs, const RecordsOptions& o, RecordsResult& out) {
  if (recs.routing.empty()) return;
  struct Acc {
    int n = 0, ok = 0, n_lat = 0, n_cost = 0;
    double lat = 0, cost = 0;
  };
  std::map<std::pair<std::string, std::string>, std::map<std::string, Acc>> cells;
  for (const auto& r : recs.routing) {
    Acc& a = cells[{r.intent, r.effort}][r.tier];
    ++a.n;
    a.ok += r.success;
    if (r.latency_ms) a.lat += *r.latency_ms, ++a.n_lat;
    if (r.cost_usd) a.cost += *r.cost_usd, ++a.n_cost;
  }
  auto round3 = [](double v) { return std::round(v * 1000.0) / 1000.0; };
  json table = json::array();
  for (const auto& [key, tiers] : cells) {
    struct Row {
      std::string tier;
      Acc a;
      double rate, cost;
      bool has_cost;
    };
    std::vector<Row> rows;
    for (const auto& [tier, a] : tiers)
      rows.push_back({tier, a, static_cast<double>(a.ok) / a.n, a.n_cost ? a.cost / a.n_cost : 0.0, a.n_cost > 0});
    // Cheapest first (tiers without cost data last), then by name, so the recommendation is stable.
    std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
      if (x.has_cost != y.has_cost) return x.has_cost;
      if (x.cost != y.cost) return x.cost < y.cost;
      return x.tier < y.tier;
    });
    json jt = json::array();
    const Row* pick = nullptr;
    const Row* best = nullptr;
    for (const auto& r : rows) {
      json row = {{"tier", r.tier}, {"n", r.a.n}, {"success_rate", round3(r.rate)}};
      row["mean_latency_ms"] = r.a.n_lat ? json(round3(r.a.lat / r.a.n_lat)) : json(nullptr);
      row["mean_cost_usd"] = r.has_cost ? json(std::round(r.cost * 1e6) / 1e6) : json(nullptr);
      jt.push_back(row);
      if (r.a.n < o.min_samples) continue;
      if (!pick && r.rate >= o.target_success_rate) pick = &r;
      if (!best || r.rate > best->rate) best = &r;
    }
    json cell = {{"intent", key.first}, {"effort", key.second}, {"tiers", jt}};
    if (pick) {
      cell["recommended_tier"] = pick->tier;
      cell["reason"] = fmt::format("cheapest tier with success rate >= {} over >= {} outcomes", o.target_success_rate,
                                   o.min_samples);
    } else if (best) {
      cell["recommended_tier"] = best->tier;
      cell["reason"] = fmt::format("no tier reaches success rate {}; highest success rate", o.target_success_rate);
    } else {
      cell["recommended_tier"] = nullptr;
      cell["reason"] = fmt::format("insufficient data: no tier has {} outcomes", o.min_samples);
    }
    table.push_back(cell);
  }
  json cal = {{"calibration_version", 1},
              {"target_success_rate", o.target_success_rate},
              {"min_samples", o.min_samples},
              {"outcomes", recs.routing.size()},
              {"table", table}};
  out.calibration_json = cal.dump(2) + "\n";
}

void build_dpo(const Records& recs, const RecordsOptions& o, RecordsResult& out) {
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  auto add = [&](const std::string& p, const std::string& c, const std::string& r, const char* source) {
    if (c == r || !seen.insert({p, c, r}).second) return;
    out.dpo.push_back({p, c, r, source});
  };
  // Ratings: per prompt, in first-seen order.
  std::vector<std::string> prompts;
  std::map<std::string, std::pair<std::vector<const Feedback*>, std::vector<const Feedback*>>> by_prompt;
  for (const auto& f : recs.feedback) {
    if (f.rating == 0) continue;
    if (!by_prompt.count(f.prompt)) prompts.push_back(f.prompt);
    auto& slot = by_prompt[f.prompt];
    if (f.rating >= 4) slot.first.push_back(&f);
    if (f.rating <= 2) slot.second.push_back(&f);
  }
  for (const auto& p : prompts) {
    int made = 0;
    for (const Feedback* c : by_prompt[p].first) {
      for (const Feedback* r : by_prompt[p].second) {
        if (made >= o.max_pairs_per_prompt) break;
        add(p, c->response, r->response, "rating");
        ++made;
      }
    }
  }
  // Retries: an approved record whose retry chain passes through rejected ones.
  std::map<std::string, const Feedback*> by_id;
  for (const auto& f : recs.feedback) by_id[f.id] = &f;
  for (const auto& f : recs.feedback) {
    if (f.verdict != "approved" || f.retry_of.empty()) continue;
    std::set<std::string> visited;
    for (auto it = by_id.find(f.retry_of); it != by_id.end() && visited.insert(it->first).second;
         it = by_id.find(it->second->retry_of)) {
      const Feedback* prev = it->second;
      if (prev->verdict == "rejected") add(prev->prompt, f.response, prev->response, "retry");
      if (prev->retry_of.empty()) break;
    }
  }
}

}  // namespace

std::string dpo_to_json(const DpoPair& p) {
  json j = {{"prompt", p.prompt}, {"chosen", p.chosen}, {"rejected", p.rejected}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<RecordsResult> import_records(const std::vector<std::string>& files, const RecordsOptions& o,
                                     const Redactor& redactor, const ExampleOptions& eo) {
  RecordsResult out;
  Records recs;
  for (const auto& file : files) {
    TL_ASSIGN_OR_RETURN(std::string text, read_file(file));
    std::istringstream in(text);
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      ++out.lines_read;
      Origin at{file, lineno};
      auto skip = [&](std::string reason) { out.skipped.push_back({file, lineno, std::move(reason)}); };
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        skip("not valid JSON");
        continue;
      }
      if (!j.is_object()) {
        skip("expected a JSON object");
        continue;
      }
      if (!j.contains("type") || !j["type"].is_string()) {
        skip("missing field 'type'");
        continue;
      }
      std::string type = j["type"].get<std::string>();
      static const std::set<std::string> kTypes = {"knowledge", "task",    "decision",
                                                   "tool_session", "routing", "feedback"};
      if (!kTypes.count(type)) {
        skip(fmt::format("unknown type '{}' (expected knowledge, task, decision, tool_session, routing or feedback)",
                         type));
        continue;
      }
      if (!j.contains("version") || !j["version"].is_number_integer()) {
        skip(fmt::format("{}: missing integer field 'version'", type));
        continue;
      }
      if (j["version"].get<int>() != kRecordsSchemaVersion) {
        skip(fmt::format("{}: unsupported version {} (expected {})", type, j["version"].get<int>(),
                         kRecordsSchemaVersion));
        continue;
      }
      redact_strings(j, redactor);
      std::optional<Bad> bad;
      int64_t weak_before = out.weak_knowledge_skipped;
      if (type == "knowledge") bad = parse_knowledge(j, at, o, recs, out.weak_knowledge_skipped);
      else if (type == "task") bad = parse_task(j, at, recs);
      else if (type == "decision") bad = parse_decision(j, at, recs);
      else if (type == "tool_session") bad = parse_session(j, at, eo, recs);
      else if (type == "routing") bad = parse_routing(j, recs);
      else bad = parse_feedback(j, at, recs);
      if (bad) {
        skip(bad->reason);
        continue;
      }
      if (out.weak_knowledge_skipped == weak_before) ++out.records_by_type[type];  // weak: read, not accepted
    }
  }
  if (eo.kinds.count("synthesis")) build_synthesis(recs, eo, out);
  if (eo.kinds.count("decomposition")) build_tasks(recs, eo, out);
  if (eo.kinds.count("decision")) build_decisions(recs, eo, out);
  if (eo.kinds.count("tool_use")) build_sessions(recs, eo, out);
  build_calibration(recs, o, out);
  build_dpo(recs, o, out);
  return out;
}

}  // namespace tl::harvest
