// BPE model (see bpe.h): character split with byte fallback / unk handling, then Word::merge_all.
#include "tokenizer/detail/bpe.h"

#include <fmt/format.h>

#include <mutex>
#include <queue>

#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_detail {

void MergeMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  slots_.assign(cap, Entry{kEmpty, 0, 0});
  mask_ = cap - 1;
  size_ = 0;
}

void MergeMap::insert(int32_t left, int32_t right, int32_t rank, int32_t new_id) {
  if (2 * (size_ + 1) > slots_.size()) {
    // Grow: rehash into a table twice the size.
    std::vector<Entry> old = std::move(slots_);
    size_t n = size_;
    reserve(n + 1 > 8 ? 2 * n : 8);
    for (const Entry& e : old) {
      if (e.key != kEmpty) insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xffffffffu), e.rank, e.new_id);
    }
  }
  uint64_t key = pack(left, right);
  for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.key == key) {
      e.rank = rank;
      e.new_id = new_id;
      return;
    }
    if (e.key == kEmpty) {
      e = Entry{key, rank, new_id};
      ++size_;
      return;
    }
  }
}

namespace {
constexpr std::string_view kMarker = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space
}  // namespace

void BpeModel::finalize() {
  ascii_ids_.assign(128, -1);
  char_ids_.clear();
  for (const auto& [token, id] : vocab) {
    if (token.empty()) continue;
    size_t len = utf8_char_length(static_cast<unsigned char>(token[0]));
    if (len != token.size()) continue;
    size_t decoded_len = 0;
    uint32_t cp = utf8_decode_at(token, 0, &decoded_len);
    if (cp < 128) {
      ascii_ids_[cp] = id;
    } else {
      char_ids_[cp] = id;
    }
  }
  split_before_marker_ = !ignore_merges && continuing_subword_prefix.empty() && end_of_word_suffix.empty() &&
                         vocab.find(kMarker) != vocab.end();
  for (const auto& [token, id] : vocab) {
    if (!split_before_marker_) break;
    // Any occurrence of the marker after a non-marker character disables the cut.
    for (size_t pos = token.find(kMarker, 1); pos != std::string::npos; pos = token.find(kMarker, pos + 1)) {
      if (pos < kMarker.size() || token.compare(pos - kMarker.size(), kMarker.size(), kMarker) != 0) {
        split_before_marker_ = false;
        break;
      }
    }
  }
  byte_fallback_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    // Rust's format!("<{b:#04X}>"): "0x" prefix, two upper-case hex digits.
    byte_fallback_ids_[static_cast<size_t>(b)] = lookup(fmt::format("<0x{:02X}>", b));
  }
}

int32_t BpeModel::lookup(std::string_view s) const {
  auto it = vocab.find(s);
  return it == vocab.end() ? -1 : it->second;
}

Status BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return Status::ok();
  if (ignore_merges) {
    // Llama-3 style: a word that is itself a token is emitted whole, never rebuilt from merges.
    int32_t id = lookup(word);
    if (id >= 0) {
      out.push_back(id);
      return Status::ok();
    }
  }
  if (!split_before_marker_) return tokenize_piece(word, out);
  size_t start = 0;
  for (size_t pos = word.find(kMarker, 1); pos != std::string_view::npos; pos = word.find(kMarker, pos + kMarker.size())) {
    // Cut only where the previous character is not itself the marker ("▁▁" can merge).
    if (pos >= kMarker.size() && word.compare(pos - kMarker.size(), kMarker.size(), kMarker) == 0) continue;
    TL_TRY(tokenize_piece(word.substr(start, pos - start), out));
    start = pos;
  }
  return tokenize_piece(word.substr(start), out);
}

Status BpeModel::tokenize_piece(std::string_view word, std::vector<int32_t>& out) const {
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_, std::try_to_lock);
    if (lock.owns_lock()) {
      auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return Status::ok();
      }
    }
  }
  size_t first = out.size();
  TL_TRY(merge_word(word, out));
  if (cacheable) {
    std::unique_lock lock(cache_mutex_, std::try_to_lock);
    // Like HF's cache, stop adding once full rather than evicting: the common words arrive first.
    if (lock.owns_lock() && cache_.size() < kCacheCapacity) {
      cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(first), out.end()));
    }
  }
  return Status::ok();
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;  // index of the previous live symbol, -1 at the start
  int32_t next;  // index of the next live symbol, -1 at the end
  int32_t len;   // byte length; 0 marks a symbol merged into its left neighbour
};

struct MergeCandidate {
  int32_t pos;
  int32_t rank;
  int32_t new_id;
  // std::priority_queue pops the largest: the "largest" is the lowest rank, then the lowest position
  // (HF's Merge ordering).
  bool operator<(const MergeCandidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

Status BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id, size_t len) {
    auto idx = static_cast<int32_t>(symbols.size());
    if (idx > 0) symbols.back().next = idx;
    symbols.push_back(Symbol{id, idx - 1, -1, static_cast<int32_t>(len)});
  };
  const bool affixes = !continuing_subword_prefix.empty() || !end_of_word_suffix.empty();
  std::string scratch;
  int32_t unk_id = -1;
  size_t unk_len = 0;
  bool have_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t len = utf8_char_length(static_cast<unsigned char>(word[i]));
    if (i + len > word.size()) len = word.size() - i;  // cannot happen on valid UTF-8; stay in bounds
    std::string_view ch = word.substr(i, len);
    const bool is_first = i == 0, is_last = i + len == word.size();
    int32_t id = -1;
    std::string_view key = ch;
    if (affixes) {
      scratch.clear();
      if (!is_first) scratch += continuing_subword_prefix;
      scratch += ch;
      if (is_last) scratch += end_of_word_suffix;
      key = scratch;
      id = lookup(key);
    } else if (len == 1 && static_cast<unsigned char>(ch[0]) < 128) {
      id = ascii_ids_[static_cast<unsigned char>(ch[0])];
    } else {
      size_t decoded = 0;
      auto it = char_ids_.find(utf8_decode_at(word, i, &decoded));
      id = it == char_ids_.end() ? -1 : it->second;
    }
    i += len;
    if (id >= 0) {
      if (have_unk) {
        add(unk_id, unk_len);
        have_unk = false;
      }
      add(id, ch.size());
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (char b : key) all &= byte_fallback_ids_[static_cast<unsigned char>(b)] >= 0;
      if (all) {
        // HF adds the byte tokens without flushing a pending unk first; keep that order.
        for (char b : key) add(byte_fallback_ids_[static_cast<unsigned char>(b)], 1);
        continue;
      }
    }
    if (unk_token) {
      if (have_unk && fuse_unk) {
        unk_len += ch.size();
      } else {
        if (have_unk) add(unk_id, unk_len);
        unk_id = lookup(*unk_token);
        if (unk_id < 0) {
          return invalid_argument("unk_token '{}' is not in the vocabulary (needed for '{}')", *unk_token, ch);
        }
        unk_len = ch.size();
        have_unk = true;
      }
    }
    // No byte fallback and no unk token: HF drops the character silently; so do we.
  }
  if (have_unk) add(unk_id, unk_len);

  // Word::merge_all.
  std::priority_queue<MergeCandidate> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const MergeMap::Entry* m = merges.find(symbols[i].id, symbols[i + 1].id)) {
      queue.push(MergeCandidate{static_cast<int32_t>(i), m->rank, m->new_id});
    }
  }
  while (!queue.empty()) {
    MergeCandidate top = queue.top();
    queue.pop();
    Symbol& cur = symbols[static_cast<size_t>(top.pos)];
    if (cur.len == 0 || cur.next < 0) continue;
    const auto right_pos = static_cast<size_t>(cur.next);
    const Symbol right = symbols[right_pos];
    // Skip entries made stale by an earlier merge that changed either side.
    const MergeMap::Entry* m = merges.find(cur.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[right_pos].len = 0;  // merged into cur
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    if (cur.prev >= 0) {
      if (const MergeMap::Entry* p = merges.find(symbols[static_cast<size_t>(cur.prev)].id, cur.id)) {
        queue.push(MergeCandidate{cur.prev, p->rank, p->new_id});
      }
    }
    if (cur.next >= 0) {
      if (const MergeMap::Entry* n = merges.find(cur.id, symbols[static_cast<size_t>(cur.next)].id)) {
        queue.push(MergeCandidate{top.pos, n->rank, n->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) out.push_back(s.id);
  }
  return Status::ok();
}

}  // namespace tl::tokenizer_detail
