// The harvest pipeline, its JSON config and report.json (see harvest.h; formats in docs/harvest.md).
#include "harvest/harvest.h"

#include <nlohmann/json.hpp>

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
                     "min_entropy", "dedup"},
                    origin, ""));
  HarvestOptions o;
  TL_TRY(get_to(j, "min_complexity", o.examples.min_complexity, origin, ""));
  TL_TRY(get_to(j, "min_lines", o.examples.min_lines, origin, ""));
  TL_TRY(get_to(j, "max_lines", o.examples.max_lines, origin, ""));
  TL_TRY(get_to(j, "kinds", o.examples.kinds, origin, ""));
  for (const auto& k : o.examples.kinds) {
    static const std::set<std::string> kKinds = {"explain", "implement", "review", "role", "impact"};
    if (!kKinds.count(k)) return invalid_argument("{}: kinds: unknown example kind '{}'", origin, k);
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
    TL_TRY(check_keys(d, {"exact", "near", "num_perm", "shingle", "bands", "threshold"}, origin, "dedup."));
    TL_TRY(get_to(d, "exact", o.dedup.exact, origin, "dedup."));
    TL_TRY(get_to(d, "near", o.dedup.near, origin, "dedup."));
    TL_TRY(get_to(d, "num_perm", o.dedup.num_perm, origin, "dedup."));
    TL_TRY(get_to(d, "shingle", o.dedup.shingle, origin, "dedup."));
    TL_TRY(get_to(d, "bands", o.dedup.bands, origin, "dedup."));
    TL_TRY(get_to(d, "threshold", o.dedup.threshold, origin, "dedup."));
    if (o.dedup.bands <= 0 || o.dedup.num_perm <= 0 || o.dedup.num_perm % o.dedup.bands != 0)
      return invalid_argument("{}: dedup.num_perm ({}) must be a positive multiple of dedup.bands ({})", origin,
                              o.dedup.num_perm, o.dedup.bands);
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

  report_progress("parse", 0, 1);
  Redactor redactor(options.redact);
  TL_ASSIGN_OR_RETURN(CodeGraph graph, CodeGraph::build(repo, options.graph, redactor));
  const GraphStats& st = graph.stats();
  double parse_graph_ms = st.walk_ms + st.parse_ms + st.link_ms;
  report_progress("parse", 1, 1);

  auto t0 = std::chrono::steady_clock::now();
  TL_TRY(write_graph_sqlite(graph, (fs::path(out_dir) / "graph.sqlite").string()));
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
  double dedup_ms = ms_since(t0);

  t0 = std::chrono::steady_clock::now();
  std::string commit = git_head_commit(repo);
  std::vector<Example> examples;
  for (size_t k = 0; k < dd.kept.size(); ++k) {
    const Node* n = passed[dd.kept[k]];
    for (auto& ex : build_examples(graph, *n, options.examples, commit)) examples.push_back(std::move(ex));
    if (k % 256 == 0) report_progress("examples", static_cast<int64_t>(k), static_cast<int64_t>(dd.kept.size()));
  }
  report_progress("examples", static_cast<int64_t>(dd.kept.size()), static_cast<int64_t>(dd.kept.size()));
  double examples_ms = ms_since(t0);

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
  double write_ms = ms_since(t0);

  // report.json
  json r;
  r["repo"] = repo;
  r["commit"] = commit.empty() ? json(nullptr) : json(commit);
  r["report_version"] = 1;
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
  int64_t exact_removed = 0, near_removed = 0;
  json removed = json::array();
  for (const auto& rm : dd.removals) {
    (rm.reason == "exact" ? exact_removed : near_removed)++;
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
  r["dedup"] = {{"exact_removed", exact_removed}, {"near_removed", near_removed}, {"removed", removed}};
  json skipped = json::array();
  for (const auto& f : graph.skipped()) skipped.push_back({{"path", f.path}, {"reason", f.reason}, {"detail", f.detail}});
  r["skipped_files"] = skipped;
  double total_ms = ms_since(t_start);
  r["timings_ms"] = {{"walk", st.walk_ms},   {"parse", st.parse_ms},     {"link", st.link_ms},
                     {"parse_graph", parse_graph_ms}, {"sqlite", sqlite_ms}, {"gate_dedup", dedup_ms},
                     {"examples", examples_ms}, {"write", write_ms},     {"total", total_ms}};
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
  s.redactions = graph.redactions().total();
  s.parse_graph_ms = parse_graph_ms;
  s.total_ms = ms_since(t_start);
  return s;
}

}  // namespace tl::harvest
