// Record importers: operational records (JSONL, schemas in docs/harvest_records.md) → training data.
//
//   knowledge     (episodic/semantic/procedural, strength; < min_strength skipped) with DERIVED_FROM /
//                 REINFORCES / RELATED edges → `synthesis` examples
//   task          goal → subtasks with dependencies                  → `decomposition` examples
//   decision      question, options, choice, rationale               → `decision` examples
//   tool_session  messages with tool calls and tool results          → `tool_use` examples (OpenAI chat
//                 format with `tool_calls` and `tool` messages, plus `tools`)
//   routing       intent, effort, tier, outcome, latency, cost       → a calibration table by intent and
//                 effort (routing_calibration.json)
//   feedback      prompt + response with a rating or a verdict       → DPO pairs (ratings >= 4 chosen vs
//                 <= 2 rejected for the same prompt; a rejected verdict followed by an approved retry)
//
// Every line carries `type` and `version` (1). A bad line — invalid JSON, unknown type, unsupported
// version, missing or mistyped field, dangling reference — is skipped with its file, line and reason;
// import never aborts for a line. Only a records file that cannot be read is an error. Every string
// value goes through the Redactor before it is used.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(tl::harvest::RecordsResult r,
//                       tl::harvest::import_records({"ops.jsonl"}, {}, redactor, example_options));
//   // r.examples → examples.jsonl, r.dpo → dpo.jsonl, r.calibration_json → routing_calibration.json
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "harvest/examples.h"
#include "harvest/redact.h"

namespace tl::harvest {

inline constexpr int kRecordsSchemaVersion = 1;

struct RecordsOptions {
  double min_strength = 0.3;         // knowledge records below it are skipped (and edges to them dropped)
  double target_success_rate = 0.9;  // calibration: a tier qualifies at or above this success rate
  int min_samples = 3;               // calibration: ... over at least this many outcomes
  int max_pairs_per_prompt = 8;      // DPO pairs from ratings, per prompt
};

struct RecordIssue {
  std::string file;
  int line = 0;
  std::string reason;
};

struct DpoPair {
  std::string prompt, chosen, rejected;
  std::string source;  // "rating" | "retry"
};

struct RecordsResult {
  std::vector<Example> examples;
  std::vector<DpoPair> dpo;
  std::string calibration_json;  // empty when no routing record was read
  int64_t lines_read = 0;        // non-blank lines
  std::map<std::string, int64_t> records_by_type;  // accepted records
  int64_t weak_knowledge_skipped = 0;              // strength < min_strength
  int64_t dangling_edges = 0;                      // knowledge edges to unknown or skipped records
  std::vector<RecordIssue> skipped;                // bad lines, in file/line order
};

Result<RecordsResult> import_records(const std::vector<std::string>& files, const RecordsOptions& options,
                                     const Redactor& redactor, const ExampleOptions& example_options);

// One DPO JSONL line: {"prompt", "chosen", "rejected"} (no trailing newline).
std::string dpo_to_json(const DpoPair& pair);

}  // namespace tl::harvest
