// Pre-tokenizer steps (see pre_tokenizer.h). The split logic follows NormalizedString::split and
// Pattern::find_matches in tokenizers/src/tokenizer/normalizer.rs and pattern.rs.
#include "tokenizer/detail/pre_tokenizer.h"

#include <algorithm>

#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_detail {

namespace {

struct Span {
  size_t start, end;
  bool is_match;
};

// Pattern::find_matches: the whole text as alternating (non-match, match) spans.
Status find_spans(const Regex& pattern, std::string_view text, bool invert, std::vector<Span>& spans) {
  spans.clear();
  std::vector<std::pair<size_t, size_t>> matches;
  TL_TRY(pattern.find_all(text, matches));
  size_t prev = 0;
  for (auto [s, e] : matches) {
    if (prev != s) spans.push_back({prev, s, invert});
    spans.push_back({s, e, !invert});
    prev = e;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});
  return Status::ok();
}

// NormalizedString::split: turns match spans into the pieces to keep.
void apply_behavior(std::vector<Span>& spans, SplitBehavior behavior) {
  std::vector<Span> out;
  out.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (auto& s : spans) s.is_match = false;
      return;
    case SplitBehavior::kRemoved:
      return;  // matched spans are dropped by the caller
    case SplitBehavior::kContiguous: {
      bool previous = false;
      for (const Span& s : spans) {
        if (s.is_match == previous && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.start, s.end, false});
        }
        previous = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.start, s.end, false});
        }
        previous = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous = false;
      for (size_t i = spans.size(); i-- > 0;) {
        const Span& s = spans[i];
        if (s.is_match && !previous && !out.empty()) {
          out.back().start = s.start;
        } else {
          out.push_back({s.start, s.end, false});
        }
        previous = s.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  spans.swap(out);
}

Status split_into(const PreTokenizerStep& step, std::string_view text, bool at_origin, Pieces& out,
                  std::vector<Span>& spans) {
  TL_TRY(find_spans(*step.pattern, text, step.invert, spans));
  apply_behavior(spans, step.behavior);
  for (const Span& s : spans) {
    if (s.is_match) continue;  // only kRemoved leaves matches flagged
    out.add(text.substr(s.start, s.end - s.start), at_origin && s.start == 0);
  }
  return Status::ok();
}

void append_byte_level(std::string_view text, std::string& out) {
  const ByteLevelAlphabet& alphabet = byte_level_alphabet();
  for (char c : text) out += alphabet.byte_to_utf8[static_cast<unsigned char>(c)];
}

}  // namespace

Status PreTokenizer::pre_tokenize(std::string_view text, bool at_origin, Pieces& out, Pieces& scratch) const {
  out.clear();
  out.add(text, at_origin);
  std::vector<Span> spans;
  std::string temp;
  for (const PreTokenizerStep& step : steps) {
    scratch.clear();
    for (const Pieces::Piece& piece : out.items) {
      std::string_view s = out.view(piece);
      switch (step.kind) {
        case PreTokenizerStep::Kind::kSplit:
          TL_TRY(split_into(step, s, piece.at_origin, scratch, spans));
          break;
        case PreTokenizerStep::Kind::kByteLevel: {
          if (step.add_prefix_space && s.front() != ' ') {
            temp.clear();
            temp.push_back(' ');
            temp.append(s);
            s = temp;
          }
          auto emit = [&](std::string_view word, bool origin) {
            if (word.empty()) return;
            size_t offset = scratch.buffer.size();
            append_byte_level(word, scratch.buffer);
            scratch.items.push_back(Pieces::Piece{offset, scratch.buffer.size() - offset, origin});
          };
          if (!step.use_regex) {
            emit(s, piece.at_origin);
            break;
          }
          // The GPT-2 regex covers every character, so its matches are the words (Isolated).
          spans.clear();
          TL_TRY(find_spans(*step.pattern, s, false, spans));
          for (const Span& sp : spans) emit(s.substr(sp.start, sp.end - sp.start), piece.at_origin && sp.start == 0);
          break;
        }
        case PreTokenizerStep::Kind::kMetaspace: {
          // Spaces become the replacement; then it is prepended unless the text already starts with it.
          const bool starts_with_replacement =
              s.front() == ' ' || s.substr(0, step.replacement.size()) == step.replacement;
          const bool prepend = !starts_with_replacement &&
                               (step.prepend_scheme == PrependScheme::kAlways ||
                                (step.prepend_scheme == PrependScheme::kFirst && piece.at_origin));
          temp.clear();
          if (prepend) temp += step.replacement;
          for (char c : s) {
            if (c == ' ') {
              temp += step.replacement;
            } else {
              temp += c;
            }
          }
          if (!step.split) {
            scratch.add(temp, piece.at_origin);
            break;
          }
          TL_TRY(split_into(step, temp, piece.at_origin, scratch, spans));
          break;
        }
      }
    }
    std::swap(out, scratch);
  }
  return Status::ok();
}

}  // namespace tl::tokenizer_detail
