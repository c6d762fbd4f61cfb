// BpeModel: HF `tokenizers`' BPE model — one pre-tokenized word in, token ids out.
//
// Mirrors tokenizers/src/models/bpe: the word is split into characters (each looked up in the vocab,
// else byte-fallback tokens <0xXX>, else unk, fused if fuse_unk), then merges are applied by a priority
// queue keyed on (merge rank, position) over a doubly linked list of symbols, exactly as Word::merge_all
// does, so ties and stale entries resolve the same way. Merge ranks live in an open-addressing hash
// map on (left id, right id) pairs, and finished words go into a bounded cache shared by all threads
// (try-lock only, so a busy cache is skipped rather than waited for). Long SentencePiece-style "words"
// are cut before "▁" where that provably cannot change the result (see split_before_marker_).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace tl::tokenizer_detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id); open addressing with linear probing.
class MergeMap {
 public:
  struct Entry {
    uint64_t key;
    int32_t rank;
    int32_t new_id;
  };
  void reserve(size_t n);
  // Later inserts of the same pair overwrite earlier ones (HF collects merges into a HashMap).
  void insert(int32_t left, int32_t right, int32_t rank, int32_t new_id);
  const Entry* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    uint64_t key = pack(left, right);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int32_t l, int32_t r) {
    return (uint64_t{static_cast<uint32_t>(l)} << 32) | static_cast<uint32_t>(r);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<Entry> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

class BpeModel {
 public:
  // Built by the loader, then frozen.
  StringIdMap vocab;
  std::vector<std::string> id_to_token;  // "" where no vocab entry has the id
  MergeMap merges;
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;

  // Call once after the fields above are filled: builds the per-character and byte-fallback lookups.
  void finalize();

  // Appends the ids of `word` (non-empty, valid UTF-8). Fails only if unk_token is needed but is not in
  // the vocabulary (HF's UnkTokenOutOfVocabulary).
  Status tokenize(std::string_view word, std::vector<int32_t>& out) const;

 private:
  Status tokenize_piece(std::string_view word, std::vector<int32_t>& out) const;
  Status merge_word(std::string_view word, std::vector<int32_t>& out) const;
  int32_t lookup(std::string_view s) const;  // -1 if absent

  static constexpr size_t kMaxCachedWordBytes = 256;  // HF's MAX_LENGTH
  static constexpr size_t kCacheCapacity = 1 << 16;

  std::vector<int32_t> ascii_ids_;                  // single ASCII character -> id or -1
  std::unordered_map<uint32_t, int32_t> char_ids_;  // single non-ASCII character -> id
  std::vector<int32_t> byte_fallback_ids_;          // byte -> id of "<0xXX>" or -1
  // SentencePiece-style vocabularies (no pre-tokenizer) hand the whole text to the model as one word.
  // If "▁" is a token and no token has "▁" right after another character, no merge can ever join the
  // text before such a "▁" with the text from it on, so the word may be cut there without changing the
  // result; the pieces are then short enough for the word cache. finalize() checks the condition.
  bool split_before_marker_ = false;

  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace tl::tokenizer_detail
