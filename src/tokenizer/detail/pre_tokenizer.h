// PreTokenizer: splits normalized text into the words the BPE model sees, and rewrites them (byte-level
// alphabet, Metaspace "▁"). Mirrors tokenizers/src/pre_tokenizers; a Sequence is flattened at load time
// and applied step by step over a flat list of pieces (one string buffer + ranges, so the hot path of
// byte-level BPE does not allocate per word).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/detail/regex.h"

namespace tl::tokenizer_detail {

// HF SplitDelimiterBehavior.
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
enum class PrependScheme { kAlways, kNever, kFirst };

struct PreTokenizerStep {
  enum class Kind { kByteLevel, kSplit, kMetaspace };
  Kind kind = Kind::kSplit;
  // ByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
  // Split / Digits (and ByteLevel's built-in GPT-2 regex when use_regex)
  std::shared_ptr<const Regex> pattern;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // Metaspace
  std::string replacement;  // one character, UTF-8
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool split = true;
};

// A list of text pieces stored back to back in one buffer.
struct Pieces {
  struct Piece {
    size_t offset;
    size_t size;
    bool at_origin;  // starts at byte 0 of the original input (Metaspace prepend_scheme "first")
  };
  std::string buffer;
  std::vector<Piece> items;
  std::string_view view(const Piece& p) const { return std::string_view(buffer).substr(p.offset, p.size); }
  void clear() {
    buffer.clear();
    items.clear();
  }
  // Empty pieces are dropped, as PreTokenizedString::split drops them.
  void add(std::string_view text, bool at_origin) {
    if (text.empty()) return;
    items.push_back(Piece{buffer.size(), text.size(), at_origin});
    buffer.append(text);
  }
};

// The GPT-2 pattern HF's ByteLevel pre-tokenizer uses when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class PreTokenizer {
 public:
  std::vector<PreTokenizerStep> steps;
  // Splits `text` (valid UTF-8) into words; `scratch` is reused between calls to avoid allocation.
  Status pre_tokenize(std::string_view text, bool at_origin, Pieces& out, Pieces& scratch) const;
};

}  // namespace tl::tokenizer_detail
