// The harvest pipeline, its JSON config and report.json (see harvest.h; formats in docs/harvest.md).
#include "harvest/harvest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "core/file.h"
#include "harvest/graph_store.h"

namespace tl::harvest {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Typed getters that name the file and key on error.
template <typename T>
Status get_to(const json& j, const char* key, T& out, const std::string& origin, const std::string& prefix) {
  if (!j.contains(key)) return Status::ok();
  const json& v = j.at(key);
  bool ok;
  if constexpr (std::is_same_v<T, bool>) ok = v.is_boolean();
  else if constexpr (std::is_integral_v<T>) ok = v.is_number_integer();
  else if constexpr (std::is_floating_point_v<T>) ok = v.is_number();
  else if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
  else ok = v.is_array();
  if (!ok) return invalid_argument("{}: key '{}{}' has the wrong type ({})", origin, prefix, key, v.type_name());
  if constexpr (std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::set<std::string>>) {
    out.clear();
    for (const auto& e : v) {
      if (!e.is_string()) return invalid_argument("{}: key '{}{}' must be a list of strings", origin, prefix, key);
      if constexpr (std::is_same_v<T, std::set<std::string>>) out.insert(e.get<std::string>());
      else out.push_back(e.get<std::string>());
    }
  } else {
    out = v.get<T>();
  }
  return Status::ok();
}

Status check_keys(const json& j, const std::set<std::string>& known, const std::string& origin, const std::string& prefix) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return invalid_argument("{}: unknown key '{}{}' (expected one of: {})", origin, prefix, it.key(), list);
    }
  }
  return Status::ok();
}

}  // namespace

Result<HarvestOptions> parse_harvest_config(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, false, true);
  if (j.is_discarded()) return invalid_argument("{}: not valid JSON", origin);
  if (!j.is_object()) return invalid_argument("{}: expected a JSON object at the top level", origin);
  TL_TRY(check_keys(j,
                    {"min_complexity", "min_lines", "max_lines", "kinds", "validation_fraction", "system_prompt",
                     "format", "max_file_bytes", "threads", "exclude_dirs", "max_error_fraction", "salt", "usernames",
                     "min_entropy", "dedup", "history", "records", "record_import", "teacher"},
                    origin, ""));
  HarvestOptions o;
  TL_TRY(get_to(j, "min_complexity", o.examples.min_complexity, origin, ""));
  TL_TRY(get_to(j, "min_lines", o.examples.min_lines, origin, ""));
  TL_TRY(get_to(j, "max_lines", o.examples.max_lines, origin, ""));
  TL_TRY(get_to(j, "kinds", o.examples.kinds, origin, ""));
  for (const auto& k : o.examples.kinds) {
    if (!all_example_kinds().count(k)) return invalid_argument("{}: kinds: unknown example kind '{}'", origin, k);
  }
  TL_TRY(get_to(j, "validation_fraction", o.examples.validation_fraction, origin, ""));
  if (o.examples.validation_fraction < 0 || o.examples.validation_fraction > 1)
    return invalid_argument("{}: validation_fraction must be in [0, 1]", origin);
  TL_TRY(get_to(j, "system_prompt", o.examples.system_prompt, origin, ""));
  TL_TRY(get_to(j, "format", o.format, origin, ""));
  if (o.format != "openai" && o.format != "sharegpt")
    return invalid_argument("{}: format must be 'openai' or 'sharegpt', got '{}'", origin, o.format);
  TL_TRY(get_to(j, "max_file_bytes", o.graph.max_file_bytes, origin, ""));
  TL_TRY(get_to(j, "threads", o.graph.threads, origin, ""));
  TL_TRY(get_to(j, "exclude_dirs", o.graph.exclude_dirs, origin, ""));
  TL_TRY(get_to(j, "max_error_fraction", o.graph.max_error_fraction, origin, ""));
  TL_TRY(get_to(j, "salt", o.redact.salt, origin, ""));
  TL_TRY(get_to(j, "usernames", o.redact.usernames, origin, ""));
  TL_TRY(get_to(j, "min_entropy", o.redact.min_entropy, origin, ""));
  if (j.contains("dedup")) {
    const json& d = j.at("dedup");
    if (!d.is_object()) return invalid_argument("{}: key 'dedup' must be an object", origin);
    TL_TRY(check_keys(d, {"exact", "near", "num_perm", "shingle", "bands", "threshold", "semantic_threshold",
                          "embed_max_tokens"},
                      origin, "dedup."));
    TL_TRY(get_to(d, "exact", o.dedup.exact, origin, "dedup."));
    TL_TRY(get_to(d, "near", o.dedup.near, origin, "dedup."));
    TL_TRY(get_to(d, "num_perm", o.dedup.num_perm, origin, "dedup."));
    TL_TRY(get_to(d, "shingle", o.dedup.shingle, origin, "dedup."));
    TL_TRY(get_to(d, "bands", o.dedup.bands, origin, "dedup."));
    TL_TRY(get_to(d, "threshold", o.dedup.threshold, origin, "dedup."));
    TL_TRY(get_to(d, "semantic_threshold", o.dedup.semantic_threshold, origin, "dedup."));
    TL_TRY(get_to(d, "embed_max_tokens", o.dedup.embed_max_tokens, origin, "dedup."));
    if (!(o.dedup.semantic_threshold > 0 && o.dedup.semantic_threshold <= 1))
      return invalid_argument("{}: dedup.semantic_threshold must be in (0, 1], got {}", origin,
                              o.dedup.semantic_threshold);
    if (o.dedup.embed_max_tokens < 1)
      return invalid_argument("{}: dedup.embed_max_tokens must be >= 1, got {}", origin, o.dedup.embed_max_tokens);
    if (o.dedup.bands <= 0 || o.dedup.num_perm <= 0 || o.dedup.num_perm % o.dedup.bands != 0)
      return invalid_argument("{}: dedup.num_perm ({}) must be a positive multiple of dedup.bands ({})", origin,
                              o.dedup.num_perm, o.dedup.bands);
  }
  if (j.contains("history")) {
    const json& h = j.at("history");
    if (!h.is_object()) return invalid_argument("{}: key 'history' must be an object", origin);
    TL_TRY(check_keys(h, {"enabled", "max_commits"}, origin, "history."));
    TL_TRY(get_to(h, "enabled", o.history.enabled, origin, "history."));
    TL_TRY(get_to(h, "max_commits", o.history.max_commits, origin, "history."));
    if (o.history.max_commits < 0)
      return invalid_argument("{}: history.max_commits must be >= 0, got {}", origin, o.history.max_commits);
  }
  TL_TRY(get_to(j, "records", o.records, origin, ""));
  if (j.contains("record_import")) {
    const json& r = j.at("record_import");
    if (!r.is_object()) return invalid_argument("{}: key 'record_import' must be an object", origin);
    TL_TRY(check_keys(r, {"min_strength", "target_success_rate", "min_samples", "max_pairs_per_prompt"}, origin,
                      "record_import."));
    TL_TRY(get_to(r, "min_strength", o.record_import.min_strength, origin, "record_import."));
    TL_TRY(get_to(r, "target_success_rate", o.record_import.target_success_rate, origin, "record_import."));
    TL_TRY(get_to(r, "min_samples", o.record_import.min_samples, origin, "record_import."));
    TL_TRY(get_to(r, "max_pairs_per_prompt", o.record_import.max_pairs_per_prompt, origin, "record_import."));
  }
  if (j.contains("teacher")) {
    const json& t = j.at("teacher");
    if (!t.is_object()) return invalid_argument("{}: key 'teacher' must be an object", origin);
    TL_TRY(check_keys(t, {"url", "model", "api_key_env", "budget_tokens", "cache_dir", "kinds", "timeout_s", "max_tokens"},
                      origin, "teacher."));
    TL_TRY(get_to(t, "url", o.teacher.url, origin, "teacher."));
    TL_TRY(get_to(t, "model", o.teacher.model, origin, "teacher."));
    TL_TRY(get_to(t, "api_key_env", o.teacher.api_key_env, origin, "teacher."));
    TL_TRY(get_to(t, "budget_tokens", o.teacher.budget_tokens, origin, "teacher."));
    TL_TRY(get_to(t, "cache_dir", o.teacher.cache_dir, origin, "teacher."));
    TL_TRY(get_to(t, "kinds", o.teacher.kinds, origin, "teacher."));
    TL_TRY(get_to(t, "timeout_s", o.teacher.timeout_s, origin, "teacher."));
    TL_TRY(get_to(t, "max_tokens", o.teacher.max_tokens, origin, "teacher."));
    if (o.teacher.url.empty()) return invalid_argument("{}: teacher.url is required in a 'teacher' section", origin);
    if (o.teacher.model.empty()) return invalid_argument("{}: teacher.model is required in a 'teacher' section", origin);
    for (const auto& k : o.teacher.kinds) {
      if (!all_example_kinds().count(k)) return invalid_argument("{}: teacher.kinds: unknown example kind '{}'", origin, k);
    }
  }
  return o;
}

Result<HarvestOptions> load_harvest_config(const std::string& path) {
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_harvest_config(text, path);
}

std::string git_head_commit(const std::string& repo) {
  fs::path git = fs::path(repo) / ".git";
  auto head = read_file((git / "HEAD").string());
  if (!head.is_ok()) return {};
  std::string h = *head;
  while (!h.empty() && (h.back() == '\n' || h.back() == '\r')) h.pop_back();
  if (!h.starts_with("ref: ")) return h.size() == 40 ? h : std::string();
  std::string ref = h.substr(5);
  if (auto r = read_file((git / ref).string()); r.is_ok()) return r->substr(0, 40);
  if (auto packed = read_file((git / "packed-refs").string()); packed.is_ok()) {
    size_t at = packed->find(" " + ref + "\n");
    if (at != std::string::npos && at >= 40) return packed->substr(at - 40, 40);
  }
  return {};
}

Result<HarvestSummary> harvest(const std::string& repo, const std::string& out_dir, const HarvestOptions& options,
                               const ProgressFn& progress) {
  auto t_start = std::chrono::steady_clock::now();
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return io_error("harvest: cannot create output directory '{}': {}", out_dir, ec.message());
  auto report_progress = [&](const char* stage, int64_t done, int64_t total) {
    if (progress) progress(stage, done, total);
  };

  // Bad teacher settings are a config error before any work, not 17k fallbacks later.
  TL_TRY(validate_teacher(options.teacher));
  for (const auto& f : options.records) {
    if (!fs::is_regular_file(f)) return not_found("harvest: records file '{}' not found", f);
  }
  Redactor redactor(options.redact);
  TL_ASSIGN_OR_RETURN(CodeGraph graph, CodeGraph::build(repo, options.graph, redactor,
                                                         [&](int64_t done, int64_t total) {
                                                           report_progress("parse", done, total);
                                                         }));
  const GraphStats& st = graph.stats();
  double parse_graph_ms = st.walk_ms + st.parse_ms + st.link_ms;

  // History: blobs and messages are redacted knowing every username the repository revealed.
  RedactOptions history_redact = options.redact;
  for (const auto& u : graph.repo_usernames()) history_redact.usernames.push_back(u);
  Redactor history_redactor(history_redact);
  HistoryOptions hopt = options.history;
  hopt.max_file_bytes = options.graph.max_file_bytes;
  History history;
  std::string history_error;
  if (auto h = read_history(repo, hopt, history_redactor); h.is_ok()) {
    history = std::move(*h);
  } else {
    history_error = h.status().message();  // an unreadable history costs the fix examples, not the harvest
  }
  report_progress("history", 1, 1);

  auto t0 = std::chrono::steady_clock::now();
  TL_TRY(write_graph_sqlite(graph, (fs::path(out_dir) / "graph.sqlite").string(), history.changes));
  double sqlite_ms = ms_since(t0);

  // Gate, then dedup the surviving functions by their (redacted) code.
  t0 = std::chrono::steady_clock::now();
  std::map<std::string, int64_t> gate_rejections;
  std::vector<const Node*> passed;
  int64_t functions = 0;
  for (const auto& n : graph.nodes()) {
    if (n.kind != NodeKind::kFunction && n.kind != NodeKind::kTest) continue;
    ++functions;
    GateResult gate = quality_gate(n, options.examples);
    if (!gate.pass) {
      ++gate_rejections[gate.reason];
      continue;
    }
    passed.push_back(&n);
  }
  std::vector<DedupItem> items;
  items.reserve(passed.size());
  for (const Node* n : passed) items.push_back({n->body, quality_score(graph, *n)});
  DedupResult dd = dedup(items, options.dedup);
  // Semantic pass: one forward per surviving function, by far the slowest stage when enabled.
  auto t_sem = std::chrono::steady_clock::now();
  TL_TRY(semantic_dedup(items, options.dedup, dd,
                        [&](int64_t done, int64_t total) { report_progress("embed", done, total); }));
  double semantic_ms = ms_since(t_sem);
  double dedup_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  std::string commit = git_head_commit(repo);
  std::vector<Example> examples;
  for (size_t k = 0; k < dd.kept.size(); ++k) {
    const Node* n = passed[dd.kept[k]];
    for (auto& ex : build_examples(graph, *n, options.examples, commit)) examples.push_back(std::move(ex));
    if (k % 256 == 0) report_progress("examples", static_cast<int64_t>(k), static_cast<int64_t>(dd.kept.size()));
  }
  // fix: pre-fix → post-fix from commits whose message reads like a fix.
  std::map<std::string, int64_t> fix_skipped;
  int64_t fix_examples = 0;
  if (options.examples.kinds.count("fix")) {
    std::map<std::pair<std::string, std::string>, int64_t> by_name;
    for (const auto& n : graph.nodes()) {
      if (n.kind == NodeKind::kFunction) by_name.emplace(std::pair{n.file, n.qualified_name}, n.id);
    }
    for (const auto& c : history.changes) {
      if (!c.is_fix) continue;
      auto lines = [](const std::string& t) { return 1 + std::count(t.begin(), t.end(), '\n'); };
      if (lines(c.before) > options.examples.max_lines || lines(c.after) > options.examples.max_lines) {
        ++fix_skipped["too_long"];
        continue;
      }
      if (normalized_hash(c.before) == normalized_hash(c.after)) {
        ++fix_skipped["whitespace_only"];
        continue;
      }
      auto it = by_name.find({c.file, c.qualified_name});
      int64_t node_id = it == by_name.end() ? 0 : it->second;
      double q = node_id ? quality_score(graph, graph.node(node_id)) : 0.0;
      examples.push_back(build_fix_example(c, node_id, q, options.examples));
      ++fix_examples;
    }
  }
  // script_doc: instruction/output pairs from PowerShell help, shell usage headers, module docstrings.
  int64_t script_docs_examples = 0;
  for (const auto& d : graph.script_docs()) {
    for (auto& ex : build_script_doc_examples(d.doc, d.file_node, options.examples, commit)) {
      examples.push_back(std::move(ex));
      ++script_docs_examples;
    }
  }
  // Records: knowledge, tasks, decisions, tool sessions, routing, feedback.
  RecordsResult records;
  if (!options.records.empty()) {
    TL_ASSIGN_OR_RETURN(records, import_records(options.records, options.record_import, redactor, options.examples));
    for (auto& ex : records.examples) examples.push_back(std::move(ex));
  }
  report_progress("examples", static_cast<int64_t>(dd.kept.size()), static_cast<int64_t>(dd.kept.size()));
  double examples_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  TeacherStats teacher = apply_teacher(examples, options.teacher);
  double teacher_ms = ms_since(t0);
  if (options.teacher.enabled()) report_progress("teacher", 1, 1);

  t0 = std::chrono::steady_clock::now();
  std::string all, train, validation;
  HarvestSummary s;
  std::map<std::string, int64_t> by_language, by_split;
  for (const auto& ex : examples) {
    all += example_to_json(ex, options.format, true) + "\n";
    std::string plain = example_to_json(ex, options.format, false) + "\n";
    (ex.split == "train" ? train : validation) += plain;
    ++s.examples_by_kind[ex.kind];
    ++by_language[ex.language];
    ++by_split[ex.split];
  }
  TL_TRY(write_file_atomic((fs::path(out_dir) / "examples.jsonl").string(), all));
  TL_TRY(write_file_atomic((fs::path(out_dir) / "train.jsonl").string(), train));
  TL_TRY(write_file_atomic((fs::path(out_dir) / "validation.jsonl").string(), validation));
  if (!options.records.empty()) {
    std::string dpo;
    for (const auto& p : records.dpo) dpo += dpo_to_json(p) + "\n";
    TL_TRY(write_file_atomic((fs::path(out_dir) / "dpo.jsonl").string(), dpo));
    if (!records.calibration_json.empty())
      TL_TRY(write_file_atomic((fs::path(out_dir) / "routing_calibration.json").string(), records.calibration_json));
  }
  double write_ms = ms_since(t0);

  // report.json
  json r;
  r["repo"] = repo;
  r["commit"] = commit.empty() ? json(nullptr) : json(commit);
  r["report_version"] = 2;
  std::map<std::string, int64_t> skipped_by_reason;
  for (const auto& f : graph.skipped()) ++skipped_by_reason[f.reason];
  r["files"] = {{"seen", st.files_seen},
                {"parsed_code", st.files_parsed},
                {"ignored_unknown_type", st.files_ignored},
                {"skipped", graph.skipped().size()},
                {"with_parse_errors", st.files_with_parse_errors},
                {"skipped_by_reason", skipped_by_reason}};
  r["loc"] = {{"total", st.loc}, {"by_language", st.loc_by_language}};
  std::map<std::string, int64_t> nodes_by_kind, edges_by_kind;
  for (const auto& n : graph.nodes()) ++nodes_by_kind[node_kind_name(n.kind)];
  for (const auto& e : graph.edges()) ++edges_by_kind[edge_kind_name(e.kind)];
  r["graph"] = {{"nodes_by_kind", nodes_by_kind},
                {"edges_by_kind", edges_by_kind},
                {"calls_total", st.calls_total},
                {"calls_resolved", st.calls_resolved}};
  r["functions"] = {{"total", functions}, {"passed_gate", passed.size()}, {"gate_rejections", gate_rejections}};
  r["examples"] = {{"total", examples.size()},
                   {"by_kind", s.examples_by_kind},
                   {"by_language", by_language},
                   {"by_split", by_split}};
  json red = json::object();
  for (int k = 0; k < static_cast<int>(RedactionKind::kCount); ++k)
    red[redaction_kind_name(static_cast<RedactionKind>(k))] = graph.redactions().get(static_cast<RedactionKind>(k));
  r["redactions"] = red;
  int64_t exact_removed = 0, near_removed = 0, semantic_removed = 0;
  json removed = json::array();
  for (const auto& rm : dd.removals) {
    (rm.reason == "exact" ? exact_removed : rm.reason == "near" ? near_removed : semantic_removed)++;
    const Node* gone = passed[rm.removed];
    const Node* kept = passed[rm.kept];
    removed.push_back({{"node_id", gone->id},
                       {"name", gone->qualified_name},
                       {"file", gone->file},
                       {"reason", rm.reason},
                       {"similarity", std::round(rm.similarity * 1000.0) / 1000.0},
                       {"kept_node_id", kept->id},
                       {"kept_file", kept->file}});
  }
  const bool semantic_on = static_cast<bool>(options.dedup.embed);
  r["dedup"] = {{"exact_removed", exact_removed},
                {"near_removed", near_removed},
                {"semantic_removed", semantic_removed},
                {"semantic",
                 {{"enabled", semantic_on},
                  {"model", semantic_on ? json(options.dedup.embed_model) : json(nullptr)},
                  {"threshold", options.dedup.semantic_threshold},
                  {"max_tokens", options.dedup.embed_max_tokens},
                  {"embedded", semantic_on ? dd.kept.size() + static_cast<size_t>(semantic_removed) : 0},
                  {"removed", semantic_removed},
                  {"ms", std::round(semantic_ms)}}},
                {"removed", removed}};
  json skipped = json::array();
  for (const auto& f : graph.skipped()) skipped.push_back({{"path", f.path}, {"reason", f.reason}, {"detail", f.detail}});
  r["skipped_files"] = skipped;
  const HistoryStats& hs = history.stats;
  r["history"] = {{"git_repo", hs.is_git_repo},
                  {"error", history_error.empty() ? json(nullptr) : json(history_error)},
                  {"max_commits", options.history.max_commits},
                  {"commits_walked", hs.commits_walked},
                  {"truncated", hs.truncated},
                  {"merges_skipped", hs.merges_skipped},
                  {"root_commits", hs.root_commits},
                  {"fix_commits", hs.fix_commits},
                  {"files_diffed", hs.files_diffed},
                  {"files_unparsed", hs.files_unparsed},
                  {"function_changes", hs.changes},
                  {"fix_changes", hs.fix_changes},
                  {"fix_examples", fix_examples},
                  {"fix_skipped", fix_skipped}};
  r["script_docs"] = {{"headers", graph.script_docs().size()}, {"examples", script_docs_examples}};
  json rec_skipped = json::array();
  for (const auto& i : records.skipped) rec_skipped.push_back({{"file", i.file}, {"line", i.line}, {"reason", i.reason}});
  int64_t dpo_rating = 0, dpo_retry = 0;
  for (const auto& p : records.dpo) (p.source == "retry" ? dpo_retry : dpo_rating)++;
  r["records"] = {{"files", options.records},
                  {"lines_read", records.lines_read},
                  {"accepted_by_type", records.records_by_type},
                  {"weak_knowledge_skipped", records.weak_knowledge_skipped},
                  {"dangling_edges", records.dangling_edges},
                  {"dpo_pairs", {{"total", records.dpo.size()}, {"rating", dpo_rating}, {"retry", dpo_retry}}},
                  {"routing_calibration", !records.calibration_json.empty()},
                  {"skipped_lines", rec_skipped}};
  r["teacher"] = {{"enabled", options.teacher.enabled()},
                  {"model", options.teacher.model},
                  {"eligible", teacher.eligible},
                  {"requests", teacher.requests},
                  {"cache_hits", teacher.cache_hits},
                  {"rewritten", teacher.rewritten},
                  {"failures", teacher.failures},
                  {"failure_reasons", teacher.failure_reasons},
                  {"budget_tokens", options.teacher.budget_tokens},
                  {"budget_skipped", teacher.budget_skipped},
                  {"tokens_used", teacher.tokens_used}};
  double total_ms = ms_since(t_start);
  r["timings_ms"] = {{"walk", st.walk_ms},   {"parse", st.parse_ms},     {"link", st.link_ms},
                     {"parse_graph", parse_graph_ms}, {"history", hs.ms}, {"sqlite", sqlite_ms},
                     {"gate_dedup", dedup_ms}, {"examples", examples_ms}, {"teacher", teacher_ms},
                     {"write", write_ms}, {"total", total_ms}};
  auto per_s = [](int64_t loc, double ms) { return ms > 0 ? static_cast<double>(loc) * 1000.0 / ms : 0.0; };
  r["throughput"] = {{"loc_per_s_parse_graph", std::round(per_s(st.loc, parse_graph_ms))},
                     {"loc_per_s_total", std::round(per_s(st.loc, total_ms))}};
  s.report_json = r.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  TL_TRY(write_file_atomic((fs::path(out_dir) / "report.json").string(), s.report_json));

  s.files_parsed = st.files_parsed;
  s.files_skipped = static_cast<int64_t>(graph.skipped().size());
  s.loc = st.loc;
  s.functions = functions;
  s.functions_passed_gate = static_cast<int64_t>(passed.size());
  s.examples = static_cast<int64_t>(examples.size());
  s.examples_train = by_split["train"];
  s.examples_validation = by_split["validation"];
  s.dedup_removed = static_cast<int64_t>(dd.removals.size());
  s.dedup_exact = exact_removed;
  s.dedup_near = near_removed;
  s.dedup_semantic = semantic_removed;
  s.semantic_enabled = semantic_on;
  s.redactions = graph.redactions().total();
  s.commits = hs.commits_walked;
  s.dpo_pairs = static_cast<int64_t>(records.dpo.size());
  s.record_lines_skipped = static_cast<int64_t>(records.skipped.size());
  s.teacher = teacher;
  s.parse_graph_ms = parse_graph_ms;
  s.total_ms = ms_since(t_start);
  return s;
}

}  // namespace tl::harvest
