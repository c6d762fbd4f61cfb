// AddedVocabulary: added and special tokens ("<|endoftext|>", "[INST]", "<s>") are found in the text
// and split out before normalization/pre-tokenization/BPE ever see it, as HF's AddedVocabulary does.
//
// Two passes, like HF's extract_and_normalize: tokens with `normalized: false` are matched in the raw
// text; the remaining pieces are normalized and then searched for tokens with `normalized: true`, whose
// patterns are the token contents passed through the same normalizer. Matching is leftmost-longest
// (aho-corasick's LeftmostLongest) over a byte trie; `single_word`, `lstrip` and `rstrip` adjust or veto
// each match exactly as AddedVocabulary::find_matches does.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tl::tokenizer_detail {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A piece of text that is either an added token (id >= 0) or plain text for the model (id == -1).
struct AddedSplit {
  size_t start, end;  // byte range in the searched text
  int32_t id;
};

class AddedTokenMatcher {
 public:
  // `patterns[i]` is the text to find for `tokens[i]` (its content, normalized or not).
  void build(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns);
  bool empty() const { return nodes_.size() <= 1; }
  // Splits `text` (valid UTF-8) into plain and token pieces covering it.
  void split(std::string_view text, std::vector<AddedSplit>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                       // index into tokens_ if a pattern ends here
  };
  // Longest pattern starting at text[pos]: returns its length (0 if none) and sets *token.
  size_t longest_at(std::string_view text, size_t pos, int32_t* token) const;

  std::vector<Node> nodes_;
  std::array<bool, 256> first_byte_{};
  std::vector<AddedToken> tokens_;
};

}  // namespace tl::tokenizer_detail
