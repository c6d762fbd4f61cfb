// harvest(): the whole `tuneloop harvest REPO --out DIR` pipeline as a library call.
//
//   walk + screen + redact + parse (CodeGraph::build) → git history (libgit2) → DIR/graph.sqlite
//   → quality gate per function → dedup (exact + MinHash, then semantic when options.dedup.embed is
//     set) over the surviving functions' redacted code
//   → example builders (graph kinds, fix from history, script doc headers, record importers)
//   → optional teacher rewrite → DIR/examples.jsonl (+ train.jsonl / validation.jsonl, split by file)
//   → with records: DIR/dpo.jsonl and DIR/routing_calibration.json
//   → DIR/report.json (counts by kind, language, gate reason, redaction kind, dedup removals,
//     skipped files and record lines with reasons, history, teacher, timings)
// Every output is written atomically; a bad input file is a line in the report, never an abort.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(tl::harvest::HarvestOptions opt, tl::harvest::load_harvest_config("harvest.json"));
//   TL_ASSIGN_OR_RETURN(tl::harvest::HarvestSummary s, tl::harvest::harvest("repo", "out", opt, nullptr));
#pragma once

#include <functional>
#include <map>
#include <string>

#include "core/status.h"
#include "harvest/code_graph.h"
#include "harvest/dedup.h"
#include "harvest/examples.h"
#include "harvest/git_history.h"
#include "harvest/records.h"
#include "harvest/redact.h"
#include "harvest/teacher.h"

namespace tl::harvest {

struct HarvestOptions {
  GraphOptions graph;
  RedactOptions redact;
  ExampleOptions examples;
  DedupOptions dedup;
  HistoryOptions history;
  std::vector<std::string> records;  // record JSONL files (records.h)
  RecordsOptions record_import;
  TeacherOptions teacher;
  std::string format = "openai";  // openai | sharegpt
};

// Reads a JSON config file (keys in docs/harvest.md). Unknown keys and wrong types are errors naming
// the file and the key.
Result<HarvestOptions> load_harvest_config(const std::string& path);
Result<HarvestOptions> parse_harvest_config(const std::string& json_text, const std::string& origin);

struct HarvestSummary {
  int64_t files_parsed = 0;
  int64_t files_skipped = 0;
  int64_t loc = 0;
  int64_t functions = 0;
  int64_t functions_passed_gate = 0;
  int64_t examples = 0;
  int64_t examples_train = 0;
  int64_t examples_validation = 0;
  int64_t dedup_removed = 0;     // all passes; by pass below
  int64_t dedup_exact = 0;
  int64_t dedup_near = 0;
  int64_t dedup_semantic = 0;
  bool semantic_enabled = false;  // options.dedup.embed was set
  int64_t redactions = 0;
  int64_t commits = 0;           // walked by the history reader
  int64_t dpo_pairs = 0;
  int64_t record_lines_skipped = 0;
  TeacherStats teacher;
  double parse_graph_ms = 0;
  double total_ms = 0;
  std::map<std::string, int64_t> examples_by_kind;
  std::string report_json;  // what was written to report.json
};

// `progress(stage, done, total)` may be null. Stages in order: "parse" (per file), "history" (once
// done), "embed" (per function, only with options.dedup.embed), "examples", "teacher" (once done, only
// with a teacher).
using ProgressFn = std::function<void(const char* stage, int64_t done, int64_t total)>;
Result<HarvestSummary> harvest(const std::string& repo, const std::string& out_dir, const HarvestOptions& options,
                               const ProgressFn& progress);

// HEAD commit of a git checkout at `repo` (reads .git directly; empty if not a git repo).
std::string git_head_commit(const std::string& repo);

}  // namespace tl::harvest
