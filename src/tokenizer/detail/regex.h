// Regex: a PCRE2 pattern compiled once with UTF + UCP (Unicode \p{..}, \s, \w) and JIT, used for the
// pre-tokenizer split patterns (GPT-2, Llama-3, Qwen2 ...) and for Replace/Split patterns.
//
// HF `tokenizers` uses Oniguruma; PCRE2 with UCP accepts the same patterns (lookahead included, which
// RE2 rejects) with the same meaning for the classes these patterns use. Matching follows Rust/onig
// find_iter: leftmost non-overlapping matches; empty matches are skipped (they never produce a split).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace tl::tokenizer_detail {

class Regex {
 public:
  // `error` receives "<pcre2 message> at offset N" on failure.
  static std::shared_ptr<const Regex> compile(std::string_view pattern, std::string* error);
  // A pattern that matches `literal` exactly (Split/Replace "String" patterns).
  static std::shared_ptr<const Regex> literal(std::string_view literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [start, end) byte offsets of every non-empty match in `text` (valid UTF-8) to `out`.
  // Fails only when PCRE2 hits a resource limit.
  Status find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code_8*, opaque here to keep pcre2.h out of this header
  std::string literal_;   // used instead of code_ when is_literal_
  bool is_literal_ = false;
};

}  // namespace tl::tokenizer_detail
