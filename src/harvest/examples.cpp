// Deterministic example builders and the quality gate (see examples.h).
//
// The answers read like a colleague's notes and state only what the graph knows, with the
// confidence of heuristic links made explicit ("likely", with evidence), so a model trained on them
// learns the repository's structure rather than hallucinated intent.
#include "harvest/examples.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "harvest/git_history.h"

namespace tl::harvest {

namespace {

struct Link {
  const Node* node;
  const Edge* edge;
};

std::vector<Link> links(const CodeGraph& g, const Node& n, EdgeKind kind, bool outgoing, double min_conf) {
  std::vector<Link> out;
  const auto& idx = outgoing ? g.out_edges(n.id) : g.in_edges(n.id);
  for (size_t i : idx) {
    const Edge& e = g.edges()[i];
    if (e.kind != kind || e.confidence < min_conf) continue;
    const Node& other = g.node(outgoing ? e.dst : e.src);
    if (&other == &n) continue;
    out.push_back({&other, &e});
  }
  std::stable_sort(out.begin(), out.end(), [](const Link& a, const Link& b) {
    if (a.edge->confidence != b.edge->confidence) return a.edge->confidence > b.edge->confidence;
    return a.node->id < b.node->id;
  });
  return out;
}

std::string first_paragraph(const std::string& doc) {
  size_t p = doc.find("\n\n");
  std::string s = p == std::string::npos ? doc : doc.substr(0, p);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

std::string kind_word(const CodeGraph& g, const Node& n) {
  if (n.parent && g.node(n.parent).kind == NodeKind::kClass) return "method of class `" + g.node(n.parent).name + "`";
  return "function";
}

std::string code_block(const Node& n) { return fmt::format("```{}\n{}\n```", fence_tag(n.language), n.body); }

std::string likely(double conf) { return conf >= 0.8 ? "" : conf >= 0.5 ? " (likely)" : " (possible)"; }

std::string list_nodes(const std::vector<Link>& ls, size_t max, bool with_file) {
  std::string out;
  for (size_t i = 0; i < ls.size() && i < max; ++i) {
    if (i) out += ", ";
    out += "`" + ls[i].node->qualified_name + "`";
    if (with_file) out += " (" + ls[i].node->file + ")";
    out += likely(ls[i].edge->confidence);
  }
  if (ls.size() > max) out += fmt::format(" and {} more", ls.size() - max);
  return out;
}

const char* complexity_word(int c) { return c > 10 ? "high" : c >= 5 ? "moderate" : "low"; }

struct Facts {
  std::vector<Link> callees, callers, tests, config, docs;
};

Facts gather(const CodeGraph& g, const Node& n) {
  Facts f;
  f.callees = links(g, n, EdgeKind::kCalls, true, 0.5);
  f.callers = links(g, n, EdgeKind::kCalls, false, 0.5);
  f.tests = links(g, n, EdgeKind::kTests, false, 0.3);
  f.config = links(g, n, EdgeKind::kReadsConfig, true, 0.3);
  f.docs = links(g, n, EdgeKind::kDocuments, false, 0.3);
  return f;
}

std::string explain_answer(const CodeGraph& g, const Node& n, const Facts& f) {
  std::string a = fmt::format("`{}` is a {} in `{}` (lines {}–{}).", n.qualified_name, kind_word(g, n), n.file,
                              n.start_line, n.end_line);
  if (!n.docstring.empty()) a += "\n\nPurpose (from its documentation): " + first_paragraph(n.docstring);
  if (!n.params.empty()) {
    a += "\n\nParameters: ";
    for (size_t i = 0; i < n.params.size(); ++i) a += (i ? ", `" : "`") + n.params[i] + "`";
    a += ".";
  }
  if (!f.callees.empty()) a += "\nIt calls " + list_nodes(f.callees, 8, false) + ".";
  else if (n.fan_out > 0)
    a += fmt::format("\nIt calls {} function(s), none resolved to a definition in this repository with confidence >= 0.5.",
                     n.fan_out);
  if (!f.callers.empty()) a += "\nIt is called by " + list_nodes(f.callers, 6, true) + ".";
  else a += "\nNo caller was found in the repository (an entry point, a callback, or public API).";
  a += fmt::format("\nControl flow: cyclomatic complexity {} ({}), {} error handler(s), {} lines.", n.complexity,
                   complexity_word(n.complexity), n.error_handlers, n.loc());
  if (!f.config.empty()) a += "\nConfiguration it reads: " + list_nodes(f.config, 6, true) + ".";
  if (!f.tests.empty()) a += "\nTested by " + list_nodes(f.tests, 5, true) + ".";
  if (!f.docs.empty()) {
    a += "\nDocumented in: ";
    for (size_t i = 0; i < f.docs.size() && i < 4; ++i) {
      if (i) a += ", ";
      a += f.docs[i].node->file + " › " + f.docs[i].node->qualified_name;
    }
    a += ".";
  }
  return a;
}

std::string review_answer(const CodeGraph& g, const Node& n, const Facts& f) {
  (void)g;
  std::vector<std::string> items;
  if (n.complexity > 10)
    items.push_back(fmt::format("Complexity {} is high: split the branches into helpers so each path can be "
                                "tested and read on its own.",
                                n.complexity));
  else
    items.push_back(fmt::format("Complexity {} is {}.", n.complexity, complexity_word(n.complexity)));
  if (n.loc() > 60) items.push_back(fmt::format("At {} lines it is long; look for steps to extract.", n.loc()));
  if (n.error_handlers == 0) {
    std::string who = f.callers.empty() ? "its callers" : list_nodes(f.callers, 3, false);
    items.push_back("No explicit error handling: failures propagate to " + who + ".");
  } else {
    items.push_back(fmt::format("Handles errors in {} place(s).", n.error_handlers));
  }
  if (n.fan_out >= 8)
    items.push_back(fmt::format("It calls {} different functions — many collaborators make it hard to test in "
                                "isolation.",
                                n.fan_out));
  if (n.params.size() > 5)
    items.push_back(fmt::format("{} parameters: consider grouping them into a struct/object.", n.params.size()));
  if (f.tests.empty())
    items.push_back(fmt::format("No test in the repository exercises it; its {} branch(es) are uncovered.",
                                std::max(1, n.complexity)));
  else
    items.push_back("Covered by " + list_nodes(f.tests, 4, false) + ".");
  if (n.docstring.empty()) items.push_back("It has no docstring or leading comment; document its contract.");
  if (f.callers.size() >= 3)
    items.push_back(fmt::format("{} callers depend on it: keep its signature stable.", f.callers.size()));
  std::string a = "Review of `" + n.qualified_name + "`:";
  for (const auto& i : items) a += "\n- " + i;
  return a;
}

std::string role_answer(const CodeGraph& g, const Node& n, const Facts& f) {
  int fan_in = n.fan_in, fan_out = static_cast<int>(f.callees.size());
  std::string role, why;
  if (fan_in >= 3 && fan_out <= 3) {
    int radius = g.blast_radius(n.id);
    role = "a utility";
    why = fmt::format("{} functions call it directly and {} reach it transitively, so a change here has a wide "
                      "blast radius; it delegates little ({} callee(s) in the repository).",
                      fan_in, radius, fan_out);
  } else if (fan_out >= 5 && fan_in <= 2) {
    role = "an orchestrator";
    why = fmt::format("it coordinates {} functions of the repository ({}), and few functions call it ({}).",
                      fan_out, list_nodes(f.callees, 6, false), fan_in);
  } else if (fan_in == 0) {
    role = "an entry point";
    why = "nothing in the repository calls it: it is invoked from outside (CLI, framework, tests or public API).";
  } else if (fan_out == 0) {
    role = "a leaf";
    why = fmt::format("it calls nothing else in the repository and is used by {} function(s).", fan_in);
  } else {
    role = "an intermediate step";
    why = fmt::format("it is called by {} function(s) and calls {} in turn.", fan_in, fan_out);
  }
  std::string a = "`" + n.qualified_name + "` is " + role + " in the call graph: " + why;
  if (!f.callers.empty()) a += "\nCallers: " + list_nodes(f.callers, 6, true) + ".";
  if (!f.callees.empty()) a += "\nCallees: " + list_nodes(f.callees, 6, true) + ".";
  return a;
}

std::string impact_answer(const Node& n, const Facts& f) {
  std::string a = "Changing `" + n.qualified_name + "` touches:";
  auto section = [&](const char* title, const std::vector<Link>& ls, bool show_file) {
    if (ls.empty()) return;
    a += fmt::format("\n\n{}:", title);
    for (size_t i = 0; i < ls.size() && i < 8; ++i) {
      const Node& o = *ls[i].node;
      a += fmt::format("\n- `{}`", o.qualified_name);
      if (show_file) a += fmt::format(" ({}:{})", o.file, o.start_line);
      a += fmt::format(" — confidence {:.2f}: {}", ls[i].edge->confidence, ls[i].edge->evidence);
    }
  };
  section("Configuration", f.config, true);
  section("Tests", f.tests, true);
  section("Documentation", f.docs, true);
  if (!f.callers.empty()) a += fmt::format("\n\nCode: {} direct caller(s), e.g. {}.", f.callers.size(),
                                           list_nodes(f.callers, 4, false));
  return a;
}

}  // namespace

const std::set<std::string>& all_example_kinds() {
  static const std::set<std::string> kKinds = ExampleOptions{}.kinds;
  return kKinds;
}

std::string body_without_docstring(const Node& fn) {
  const std::string& b = fn.body;
  if (fn.doc_begin < 0 || fn.doc_end <= fn.doc_begin || static_cast<size_t>(fn.doc_end) > b.size()) return b;
  size_t begin = static_cast<size_t>(fn.doc_begin), end = static_cast<size_t>(fn.doc_end);
  // Take the whole line when the docstring stands alone on it (the usual case), so no blank line is left.
  size_t line_start = b.rfind('\n', begin == 0 ? 0 : begin - 1);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  bool alone_before = b.find_first_not_of(" \t", line_start) >= begin;
  size_t line_end = b.find('\n', end);
  bool alone_after = b.find_first_not_of(" \t", end) >= (line_end == std::string::npos ? b.size() : line_end);
  if (alone_before && alone_after && line_start > 0) {
    begin = line_start;
    end = line_end == std::string::npos ? b.size() : line_end + 1;
  }
  return b.substr(0, begin) + b.substr(end);
}

Example build_fix_example(const FunctionChange& c, int64_t node_id, double quality, const ExampleOptions& o) {
  Example ex;
  ex.kind = "fix";
  ex.language = language_name(c.language);
  ex.system = o.system_prompt;
  const char* tag = fence_tag(c.language);
  ex.user = fmt::format("`{}` in `{}` has a bug. Find it and fix it; return the corrected code.\n\n```{}\n{}\n```",
                        c.qualified_name, c.file, tag, c.before);
  ex.assistant = fmt::format("{}\n\n```{}\n{}\n```", c.message, tag, c.after);
  ex.provenance.source = "commit";
  ex.provenance.node_id = node_id;
  ex.provenance.file = c.file;
  ex.provenance.start_line = c.after_start;
  ex.provenance.end_line = c.after_end;
  ex.provenance.commit = c.commit;
  ex.provenance.quality = quality;
  ex.split = split_for_file(c.file, o.validation_fraction);
  return ex;
}

std::vector<Example> build_script_doc_examples(const ScriptDoc& d, int64_t file_node, const ExampleOptions& o,
                                               const std::string& commit) {
  std::vector<Example> out;
  if (!o.kinds.count("script_doc")) return out;
  const char* lang = language_name(d.language);
  Provenance prov;
  prov.source = "script_doc";
  prov.node_id = file_node;
  prov.file = d.file;
  prov.start_line = d.start_line;
  prov.end_line = d.end_line;
  prov.commit = commit;
  // Quality: how much of the header is filled in (synopsis, description, usage/parameters, examples).
  prov.quality = std::round((0.4 * !d.synopsis.empty() + 0.2 * !d.description.empty() +
                             0.2 * (!d.usage.empty() || !d.parameters.empty()) + 0.2 * !d.examples.empty()) *
                            1000.0) /
                 1000.0;
  std::string split = split_for_file(d.file, o.validation_fraction);
  auto add = [&](std::string user, std::string assistant) {
    if (assistant.size() < 40 || assistant.size() > 8000) return;  // too thin to teach / a whole manual
    out.push_back({"script_doc", lang, o.system_prompt, std::move(user), std::move(assistant), prov, split, "", ""});
  };
  std::string what;
  if (d.language == Language::kPowerShell)
    what = d.is_function ? fmt::format("the PowerShell function `{}` (in `{}`)", d.name, d.file)
                         : fmt::format("the PowerShell script `{}`", d.file);
  else if (d.language == Language::kBash)
    what = fmt::format("the shell script `{}`", d.file);
  else
    what = fmt::format("the Python module `{}`", d.file);
  std::string about = d.synopsis;
  if (!d.description.empty()) about += (about.empty() ? "" : "\n\n") + d.description;
  add(fmt::format("What does {} do?", what), about);
  if (!d.usage.empty()) add(fmt::format("How do I run {}? Show its usage.", what), d.usage);
  if (!d.parameters.empty()) {
    std::string a = fmt::format("`{}` takes these parameters:", d.name);
    for (const auto& [name, text] : d.parameters) {
      std::string flat = text;
      std::replace(flat.begin(), flat.end(), '\n', ' ');
      a += fmt::format("\n- `-{}`: {}", name, flat.empty() ? "(undocumented)" : flat);
    }
    add(fmt::format("What parameters does {} take?", what), a);
  }
  for (const auto& ex : d.examples) {
    if (ex.text.empty()) continue;
    add(fmt::format("Write the PowerShell command that uses `{}` to do this: {}", d.name, ex.text),
        fmt::format("```powershell\n{}\n```", ex.code));
  }
  return out;
}

GateResult quality_gate(const Node& fn, const ExampleOptions& o) {
  if (fn.kind == NodeKind::kTest) return {false, "test"};
  if (fn.kind != NodeKind::kFunction) return {false, "not_a_function"};
  if (fn.parse_error) return {false, "parse_error"};
  if (fn.complexity < o.min_complexity) return {false, "complexity_below_min"};
  if (fn.loc() < o.min_lines) return {false, "too_short"};
  if (fn.loc() > o.max_lines || fn.body.size() > 40000) return {false, "too_long"};
  return {true, ""};
}

double quality_score(const CodeGraph& g, const Node& fn) {
  bool tested = false;
  for (size_t i : g.in_edges(fn.id)) tested |= g.edges()[i].kind == EdgeKind::kTests;
  double q = 0.30 * std::min(1.0, fn.complexity / 10.0) + 0.20 * (fn.docstring.empty() ? 0.0 : 1.0) +
             0.15 * std::min(1.0, fn.loc() / 30.0) + 0.15 * std::min(1.0, fn.fan_in / 3.0) + 0.10 * (tested ? 1.0 : 0.0) +
             0.10 * (fn.params.empty() ? 0.5 : 1.0);
  return std::round(q * 1000.0) / 1000.0;
}

std::string split_for_file(const std::string& file, double validation_fraction) {
  uint64_t h = 1469598103934665603ull;
  for (char c : file) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  h ^= h >> 29;
  return static_cast<double>(h % 10000) < validation_fraction * 10000.0 ? "validation" : "train";
}

std::vector<Example> build_examples(const CodeGraph& g, const Node& n, const ExampleOptions& o,
                                    const std::string& commit) {
  std::vector<Example> out;
  Facts f = gather(g, n);
  Provenance prov;
  prov.node_id = n.id;
  prov.file = n.file;
  prov.start_line = n.start_line;
  prov.end_line = n.end_line;
  prov.commit = commit;
  prov.quality = quality_score(g, n);
  std::string split = split_for_file(n.file, o.validation_fraction);
  const char* lang = language_name(n.language);
  auto add = [&](const char* kind, std::string user, std::string assistant) {
    if (!o.kinds.count(kind)) return;
    out.push_back({kind, lang, o.system_prompt, std::move(user), std::move(assistant), prov, split, "", ""});
  };
  add("explain",
      fmt::format("Explain what `{}` in `{}` does and how it fits into the codebase.\n\n{}", n.qualified_name, n.file,
                  code_block(n)),
      explain_answer(g, n, f));
  if (!n.docstring.empty()) {
    std::string ctx;
    if (n.parent && g.node(n.parent).kind == NodeKind::kClass) ctx += "\nIt is a method of class `" + g.node(n.parent).name + "`.";
    if (!f.callees.empty()) ctx += "\nIt should use: " + list_nodes(f.callees, 8, false) + ".";
    if (!f.config.empty()) ctx += "\nIt reads configuration: " + list_nodes(f.config, 4, false) + ".";
    add("implement",
        fmt::format("Implement this {} {} in `{}`.\n\nSignature: `{}`\n\nDocumentation:\n{}\n{}\nReturn only the code.",
                    lang, kind_word(g, n), n.file, n.signature, n.docstring, ctx),
        fmt::format("```{}\n{}\n```", fence_tag(n.language), body_without_docstring(n)));
  }
  add("review",
      fmt::format("Review `{}` from `{}` for complexity, error handling, coupling and test coverage.\n\n{}",
                  n.qualified_name, n.file, code_block(n)),
      review_answer(g, n, f));
  add("role",
      fmt::format("What role does `{}` (in `{}`) play in this repository's call graph?", n.qualified_name, n.file),
      role_answer(g, n, f));
  if (!f.config.empty() || !f.tests.empty() || !f.docs.empty()) {
    add("impact",
        fmt::format("If I change `{}` in `{}`, which configuration, tests and documentation are tied to it?",
                    n.qualified_name, n.file),
        impact_answer(n, f));
  }
  return out;
}

namespace {

// ShareGPT has no tool roles of its own; we use the common extension (LLaMA-Factory's): an assistant
// turn with tool calls is `function_call` (its value the calls as JSON), a tool result `observation`.
nlohmann::ordered_json to_sharegpt(const nlohmann::ordered_json& messages) {
  auto out = nlohmann::ordered_json::array();
  for (const auto& m : messages) {
    std::string role = m.value("role", "");
    if (role == "assistant" && m.contains("tool_calls")) {
      auto calls = nlohmann::ordered_json::array();
      for (const auto& c : m["tool_calls"])
        calls.push_back({{"name", c["function"]["name"]}, {"arguments", c["function"]["arguments"]}});
      out.push_back({{"from", "function_call"}, {"value", calls.size() == 1 ? calls[0].dump() : calls.dump()}});
      continue;
    }
    std::string from = role == "system" ? "system" : role == "user" ? "human" : role == "tool" ? "observation" : "gpt";
    out.push_back({{"from", from}, {"value", m.value("content", "")}});
  }
  return out;
}

}  // namespace

std::string example_to_json(const Example& ex, const std::string& format, bool with_metadata) {
  nlohmann::ordered_json j;
  if (!ex.messages_json.empty()) {
    auto messages = nlohmann::ordered_json::parse(ex.messages_json, nullptr, false);
    if (format == "sharegpt") j["conversations"] = to_sharegpt(messages);
    else j["messages"] = messages;
    if (!ex.tools_json.empty()) {
      auto tools = nlohmann::ordered_json::parse(ex.tools_json, nullptr, false);
      if (!tools.is_discarded() && !tools.empty()) j["tools"] = tools;
    }
  } else if (format == "sharegpt") {
    j["conversations"] = nlohmann::ordered_json::array({{{"from", "system"}, {"value", ex.system}},
                                                        {{"from", "human"}, {"value", ex.user}},
                                                        {{"from", "gpt"}, {"value", ex.assistant}}});
  } else {
    j["messages"] = nlohmann::ordered_json::array({{{"role", "system"}, {"content", ex.system}},
                                                   {{"role", "user"}, {"content", ex.user}},
                                                   {{"role", "assistant"}, {"content", ex.assistant}}});
  }
  if (with_metadata) {
    j["kind"] = ex.kind;
    j["language"] = ex.language;
    j["split"] = ex.split;
    const auto& p = ex.provenance;
    j["provenance"] = {{"source", p.source},
                       {"node_id", p.node_id},
                       {"file", p.file},
                       {"lines", {p.start_line, p.end_line}},
                       {"commit", p.commit.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(p.commit)},
                       {"quality", p.quality}};
    if (!p.record_id.empty()) j["provenance"]["record_id"] = p.record_id;
    if (!p.teacher.empty()) j["provenance"]["teacher"] = p.teacher;
  }
  // Replace invalid UTF-8 rather than throw: inputs were validated, but be safe at the C++ boundary.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace tl::harvest
