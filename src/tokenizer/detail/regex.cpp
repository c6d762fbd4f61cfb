// PCRE2-backed Regex (see regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/detail/regex.h"

#include <pcre2.h>

#include <memory>

#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_detail {

std::shared_ptr<const Regex> Regex::compile(std::string_view pattern, std::string* error) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
  if (re == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(code, buffer, sizeof(buffer));
    *error = std::string(reinterpret_cast<const char*>(buffer)) + " at offset " + std::to_string(offset);
    return nullptr;
  }
  // JIT is an optimisation: if it is unavailable the interpreter gives the same matches.
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
  std::shared_ptr<Regex> result(new Regex());
  result->code_ = re;
  return result;
}

std::shared_ptr<const Regex> Regex::literal(std::string_view literal) {
  std::shared_ptr<Regex> result(new Regex());
  result->literal_ = std::string(literal);
  result->is_literal_ = true;
  return result;
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Status Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  if (is_literal_) {
    if (literal_.empty()) return Status::ok();  // an empty pattern only has empty matches
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out.emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
    return Status::ok();
  }
  auto* re = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(re, nullptr), &pcre2_match_data_free);
  if (!md) return resource_exhausted("regex: out of memory for match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  uint32_t extra_options = 0;
  while (pos <= text.size()) {
    // The text was validated (or repaired) once up front, so skip PCRE2's per-call UTF check.
    int rc = pcre2_match(re, subject, text.size(), pos, PCRE2_NO_UTF_CHECK | extra_options, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && extra_options == 0) {
      // The JIT's fixed machine stack ran out on a pathological input; the interpreter keeps its
      // backtracking state on the heap and gives the same matches.
      extra_options = PCRE2_NO_JIT;
      continue;
    }
    if (rc < 0) {
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(rc, buffer, sizeof(buffer));
      return resource_exhausted("regex match failed at byte {}: {}", pos, reinterpret_cast<const char*>(buffer));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t start = ov[0], end = ov[1];
    if (end <= start) {
      // Empty match: it cannot form a split; move one character on, as Rust's find_iter does.
      if (start >= text.size()) break;
      pos = start + utf8_char_length(static_cast<unsigned char>(text[start]));
      continue;
    }
    out.emplace_back(start, end);
    pos = end;
  }
  return Status::ok();
}

}  // namespace tl::tokenizer_detail
