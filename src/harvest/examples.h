// Example builders: turn graph facts about one function into training conversations.
//
// Every builder is deterministic — the answer is written from facts in the graph (signature, docstring,
// calls, callers, complexity, tests, config, docs), never invented — and every example carries
// provenance {source, node_id, file, lines, commit, quality}. A function first has to pass the quality
// gate (defaults: complexity >= 3, >= 5 lines, <= 400 lines, no parse errors, not a test).
//
// Kinds from the graph: explain · implement (needs a docstring) · review · role (call-graph role) ·
// impact (needs at least one config/test/doc edge). From history: fix (pre-fix → post-fix, see
// git_history.h). From script doc headers: script_doc. From records (records.h): synthesis ·
// decomposition · decision · tool_use.
//
// Usage:
//   tl::harvest::ExampleOptions opt;
//   if (auto gate = tl::harvest::quality_gate(node, opt); gate.pass)
//     for (auto& ex : tl::harvest::build_examples(graph, node, opt, "abc123")) write(ex);
#pragma once

#include <set>
#include <string>
#include <vector>

#include "harvest/code_graph.h"

namespace tl::harvest {

struct ExampleOptions {
  int min_complexity = 3;
  int min_lines = 5;
  int max_lines = 400;
  std::set<std::string> kinds = {"explain",   "implement",     "review",   "role",    "impact",  "fix",
                                 "script_doc", "synthesis", "decomposition", "decision", "tool_use"};
  double validation_fraction = 0.1;  // of files (not examples): a file's examples share one split
  std::string system_prompt =
      "You are a senior engineer who knows this codebase: its call graph, configuration, tests and documentation.";
};

// Every kind known to the builders, for config validation.
const std::set<std::string>& all_example_kinds();

struct Provenance {
  std::string source = "graph";  // graph | commit | script_doc | records
  int64_t node_id = 0;           // graph node (0 when none: records, functions gone since the commit)
  std::string file;              // repo-relative path; for records the records file as given
  int start_line = 0, end_line = 0;
  std::string commit;     // HEAD of the harvested repo; for fix examples the fixing commit
  double quality = 0;
  std::string record_id;  // records: the record's id
  std::string teacher;    // the teacher model that rewrote the answer, empty when deterministic
};

struct Example {
  std::string kind;
  std::string language;
  std::string system, user, assistant;
  Provenance provenance;
  std::string split;  // "train" | "validation"
  // Multi-turn examples (tool_use): the OpenAI `messages` array as JSON, replacing system/user/assistant,
  // and the `tools` array (JSON, may be empty).
  std::string messages_json;
  std::string tools_json;
};

struct GateResult {
  bool pass = false;
  std::string reason;  // empty when pass; else complexity_below_min | too_short | too_long | parse_error | test
};

GateResult quality_gate(const Node& fn, const ExampleOptions& options);
// In [0,1]: complexity, docstring, size, callers and test coverage, weighted (docs/harvest.md).
double quality_score(const CodeGraph& graph, const Node& fn);
std::vector<Example> build_examples(const CodeGraph& graph, const Node& fn, const ExampleOptions& options,
                                    const std::string& commit);
// Pre-fix → post-fix with the commit message (kind "fix"; provenance.source "commit"). `node_id` is the
// function's node in the HEAD graph (0 if it no longer exists), `quality` its quality score.
struct FunctionChange;
Example build_fix_example(const FunctionChange& change, int64_t node_id, double quality, const ExampleOptions& options);
// Instruction/output pairs from one script doc header (kind "script_doc"); answers shorter than 40
// characters are dropped as too thin to teach anything.
std::vector<Example> build_script_doc_examples(const ScriptDoc& doc, int64_t file_node, const ExampleOptions& options,
                                               const std::string& commit);
// The function's code without its in-body docstring (Python), which the implement question already gives.
std::string body_without_docstring(const Node& fn);

// "train" or "validation", from a hash of the file path.
std::string split_for_file(const std::string& file, double validation_fraction);

// One JSONL line (no trailing newline). format: "openai" ({"messages": [...], ...}) or "sharegpt"
// ({"conversations": [{"from", "value"}], ...}); `with_metadata` adds kind/language/split/provenance.
std::string example_to_json(const Example& ex, const std::string& format, bool with_metadata);

}  // namespace tl::harvest
