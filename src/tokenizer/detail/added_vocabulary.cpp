// Added-token matching (see added_vocabulary.h); find_matches transcribes HF's
// AddedVocabulary::find_matches (tokenizers/src/tokenizer/added_vocabulary.rs).
#include "tokenizer/detail/added_vocabulary.h"

#include <algorithm>

#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_detail {

void AddedTokenMatcher::build(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns) {
  nodes_.assign(1, Node{});
  first_byte_.fill(false);
  tokens_ = tokens;
  for (size_t t = 0; t < patterns.size(); ++t) {
    const std::string& p = patterns[t];
    if (p.empty()) continue;  // an empty pattern can never be split out
    int32_t node = 0;
    for (char c : p) {
      auto byte = static_cast<unsigned char>(c);
      auto& children = nodes_[static_cast<size_t>(node)].children;
      auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
      if (it != children.end() && it->first == byte) {
        node = it->second;
      } else {
        auto next = static_cast<int32_t>(nodes_.size());
        children.insert(it, {byte, next});
        nodes_.emplace_back();
        node = next;
      }
    }
    // Two tokens with the same pattern: the first one keeps it.
    if (nodes_[static_cast<size_t>(node)].token < 0) nodes_[static_cast<size_t>(node)].token = static_cast<int32_t>(t);
    first_byte_[static_cast<unsigned char>(p[0])] = true;
  }
}

size_t AddedTokenMatcher::longest_at(std::string_view text, size_t pos, int32_t* token) const {
  size_t best = 0;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& children = nodes_[static_cast<size_t>(node)].children;
    auto byte = static_cast<unsigned char>(text[i]);
    auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{-1}));
    if (it == children.end() || it->first != byte) break;
    node = it->second;
    if (nodes_[static_cast<size_t>(node)].token >= 0) {
      best = i + 1 - pos;
      *token = nodes_[static_cast<size_t>(node)].token;
    }
  }
  return best;
}

namespace {

uint32_t last_char(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  size_t len = 0;
  return utf8_decode_at(s, i, &len);
}

bool is_word_char(uint32_t cp) { return cp == '_' || is_unicode_alphanumeric(cp); }

}  // namespace

void AddedTokenMatcher::split(std::string_view text, std::vector<AddedSplit>& out) const {
  out.clear();
  size_t start_offset = 0;
  if (!empty()) {
    size_t pos = 0;
    while (pos < text.size()) {
      if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
        ++pos;
        continue;
      }
      int32_t t = -1;
      size_t len = longest_at(text, pos, &t);
      if (len == 0) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + len;
      pos = stop;  // the automaton resumes after the match even if the match is vetoed below
      const AddedToken& token = tokens_[static_cast<size_t>(t)];
      if (token.single_word) {
        bool start_space = start == 0 || !is_word_char(last_char(text.substr(0, start)));
        size_t clen = 0;
        bool stop_space = stop == text.size() || !is_word_char(utf8_decode_at(text, stop, &clen));
        if (!start_space || !stop_space) continue;
      }
      if (token.lstrip) {
        size_t new_start = start;
        while (new_start > 0) {
          size_t i = new_start - 1;
          while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
          size_t clen = 0;
          if (!is_unicode_whitespace(utf8_decode_at(text, i, &clen))) break;
          new_start = i;
        }
        // Spaces already consumed by a previous match's rstrip stay with it.
        start = std::max(new_start, start_offset);
      }
      if (token.rstrip) {
        while (stop < text.size()) {
          size_t clen = 0;
          if (!is_unicode_whitespace(utf8_decode_at(text, stop, &clen))) break;
          stop += clen;
        }
      }
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, token.id});
      start_offset = stop;
    }
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace tl::tokenizer_detail
