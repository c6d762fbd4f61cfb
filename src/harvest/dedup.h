// Deduplication of harvested items: exact (hash of whitespace-normalised, lower-cased text) and near
// (MinHash over word 5-grams with 256 permutations, banded LSH with 32 bands × 8 rows, kept when the
// estimated Jaccard similarity is >= 0.7 — BigCode's settings).
//
// Greedy by quality: items are visited from highest quality to lowest (ties: lower index first) and an
// item is removed when it duplicates one already kept, so the best member of every cluster survives.
//
// Usage:
//   std::vector<tl::harvest::DedupItem> items = {{"def f(x): ...", 0.8}, {"def f(x):  ...", 0.5}};
//   tl::harvest::DedupResult r = tl::harvest::dedup(items, {});
//   // r.kept == {0}; r.removals[0] == {1, 0, "exact", 1.0}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tl::harvest {

struct DedupOptions {
  bool exact = true;
  bool near = true;
  int num_perm = 256;
  int shingle = 5;  // words per shingle
  int bands = 32;   // num_perm must be divisible by bands
  double threshold = 0.7;
  uint64_t seed = 42;
};

struct DedupItem {
  std::string text;
  double quality = 0;
};

struct DedupRemoval {
  size_t removed = 0;
  size_t kept = 0;          // the surviving duplicate
  std::string reason;       // "exact" | "near"
  double similarity = 1.0;  // estimated Jaccard for near duplicates
};

struct DedupResult {
  std::vector<size_t> kept;  // ascending indices
  std::vector<DedupRemoval> removals;
};

DedupResult dedup(const std::vector<DedupItem>& items, const DedupOptions& options);

// Building blocks, exposed for tests.
std::vector<uint64_t> shingle_hashes(const std::string& text, int words_per_shingle);
std::vector<uint32_t> minhash_signature(const std::vector<uint64_t>& shingles, int num_perm, uint64_t seed);
double estimated_jaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);
uint64_t normalized_hash(const std::string& text);

}  // namespace tl::harvest
