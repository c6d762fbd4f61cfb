// Normalizer: the text transformations HF applies before pre-tokenization (and to the content of
// added tokens flagged `normalized`). A Sequence is flattened at load time into a list of steps.
//
// Offsets are not tracked (tuneloop never needs token -> character alignment), so each step is a plain
// string -> string function.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/detail/regex.h"
#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_detail {

struct NormalizerStep {
  enum class Kind { kPrepend, kReplace, kUnicode, kStrip };
  Kind kind = Kind::kPrepend;
  std::string text;                      // Prepend: the prefix; Replace: the replacement
  std::shared_ptr<const Regex> pattern;  // Replace
  NormalForm form = NormalForm::kNfc;    // Unicode
  bool strip_left = false, strip_right = false;  // Strip
};

class Normalizer {
 public:
  std::vector<NormalizerStep> steps;
  bool empty() const { return steps.empty(); }
  // `in` is valid UTF-8; `out` receives the normalized text.
  Status normalize(std::string_view in, std::string& out) const;
};

}  // namespace tl::tokenizer_detail
