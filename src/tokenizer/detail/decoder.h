// Decoder: token strings -> text, as HF's decoders do it (tokenizers/src/decoders). Each step maps a
// list of token strings to a new list (decode_chain); the final list is concatenated. A Sequence is
// flattened at load time. With no decoder at all, HF joins tokens with " ", and so do we.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/detail/pre_tokenizer.h"
#include "tokenizer/detail/regex.h"

namespace tl::tokenizer_detail {

struct DecoderStep {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind = Kind::kFuse;
  std::shared_ptr<const Regex> pattern;  // Replace
  std::string content;                   // Replace: replacement; Strip: the character; Metaspace: replacement
  size_t start = 0, stop = 0;            // Strip
  PrependScheme prepend_scheme = PrependScheme::kAlways;  // Metaspace
};

class Decoder {
 public:
  std::vector<DecoderStep> steps;
  bool present = false;  // false: no decoder in tokenizer.json (tokens joined by " ")
  std::string decode(std::vector<std::string> tokens) const;
};

}  // namespace tl::tokenizer_detail
