// Validation of uploaded training files: JSONL, one example per line, in one of the formats the trainer
// reads (ARCHITECTURE.md "Formats we speak"). Every bad line is reported by number (up to a limit), so a
// user fixes the file in one pass instead of one upload per error. Also counts lines and estimates
// tokens for the preflight cost estimate.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(DatasetSummary s, check_jsonl_dataset(bytes, "train.jsonl"));
//   s.format      // "openai_chat", "sharegpt", "alpaca", "input_output" or "dpo"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tl::jobs {

struct DatasetSummary {
  std::string format;
  int64_t lines = 0;           // examples
  int64_t token_estimate = 0;  // ≈ characters / 4 + 4 per message; see estimate.h for why no tokenizer
};

// Errors: kInvalidArgument "train.jsonl: line 3: not valid JSON (...); line 7: ..." listing at most
// `max_reported` lines, then "and N more".
Result<DatasetSummary> check_jsonl_dataset(std::string_view content, const std::string& name, int max_reported = 10);

}  // namespace tl::jobs
