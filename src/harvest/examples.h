// Example builders: turn graph facts about one function into training conversations.
//
// Every builder is deterministic — the answer is written from facts in the graph (signature, docstring,
// calls, callers, complexity, tests, config, docs), never invented — and every example carries
// provenance {source, node_id, file, lines, commit, quality}. A function first has to pass the quality
// gate (defaults: complexity >= 3, >= 5 lines, <= 400 lines, no parse errors, not a test).
//
// Kinds: explain · implement (needs a docstring) · review · role (call-graph role) · impact (needs at
// least one config/test/doc edge).
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
  std::set<std::string> kinds = {"explain", "implement", "review", "role", "impact"};
  double validation_fraction = 0.1;  // of files (not examples): a file's examples share one split
  std::string system_prompt =
      "You are a senior engineer who knows this codebase: its call graph, configuration, tests and documentation.";
};

struct Provenance {
  std::string source = "graph";
  int64_t node_id = 0;
  std::string file;
  int start_line = 0, end_line = 0;
  std::string commit;  // HEAD of the harvested repo when known
  double quality = 0;
};

struct Example {
  std::string kind;
  std::string language;
  std::string system, user, assistant;
  Provenance provenance;
  std::string split;  // "train" | "validation"
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
// "train" or "validation", from a hash of the file path.
std::string split_for_file(const std::string& file, double validation_fraction);

// One JSONL line (no trailing newline). format: "openai" ({"messages": [...], ...}) or "sharegpt"
// ({"conversations": [{"from", "value"}], ...}); `with_metadata` adds kind/language/split/provenance.
std::string example_to_json(const Example& ex, const std::string& format, bool with_metadata);

}  // namespace tl::harvest
