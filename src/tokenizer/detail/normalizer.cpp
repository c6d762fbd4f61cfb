// Normalizer steps (see normalizer.h), each matching tokenizers/src/normalizers.
#include "tokenizer/detail/normalizer.h"

namespace tl::tokenizer_detail {

namespace {

// Replace every (non-overlapping, leftmost) match of `pattern` by `content`.
Status replace_all(const Regex& pattern, std::string_view content, std::string_view in, std::string& out) {
  std::vector<std::pair<size_t, size_t>> matches;
  TL_TRY(pattern.find_all(in, matches));
  out.clear();
  size_t prev = 0;
  for (auto [s, e] : matches) {
    out.append(in.substr(prev, s - prev));
    out.append(content);
    prev = e;
  }
  out.append(in.substr(prev));
  return Status::ok();
}

// NormalizedString::strip: removes leading/trailing Unicode whitespace.
std::string_view strip(std::string_view s, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t len = 0;
      if (!is_unicode_whitespace(utf8_decode_at(s, b, &len))) break;
      b += len;
    }
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      size_t len = 0;
      if (!is_unicode_whitespace(utf8_decode_at(s, start, &len))) break;
      e = start;
    }
  }
  return s.substr(b, e - b);
}

}  // namespace

Status Normalizer::normalize(std::string_view in, std::string& out) const {
  std::string current(in), next;
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::kPrepend:
        // HF's Prepend leaves an empty string empty.
        if (!current.empty()) current.insert(0, step.text);
        continue;
      case NormalizerStep::Kind::kReplace:
        TL_TRY(replace_all(*step.pattern, step.text, current, next));
        break;
      case NormalizerStep::Kind::kUnicode:
        if (!unicode_normalize(current, step.form, next)) return resource_exhausted("unicode normalization failed");
        break;
      case NormalizerStep::Kind::kStrip:
        next = std::string(strip(current, step.strip_left, step.strip_right));
        break;
    }
    current.swap(next);
  }
  out = std::move(current);
  return Status::ok();
}

}  // namespace tl::tokenizer_detail
