// Deduplication of harvested items: exact (hash of whitespace-normalised, lower-cased text) and near
// (MinHash over word 5-grams with 256 permutations, banded LSH with 32 bands × 8 rows, kept when the
// estimated Jaccard similarity is >= 0.7 — BigCode's settings), then, when an embedding function is
// given, semantic (cosine of L2-normalised embeddings >= 0.85) over what the first two passes kept.
//
// The embedding is a hook (DedupOptions::embed) so that this module stays free of the model and
// tokenizer: `tuneloop harvest --model DIR` passes mean-pooled hidden states from our engine, tests pass
// deterministic vectors.
//
// Greedy by quality: items are visited from highest quality to lowest (ties: lower index first) and an
// item is removed when it duplicates one already kept, so the best member of every cluster survives.
//
// Usage:
//   std::vector<tl::harvest::DedupItem> items = {{"def f(x): ...", 0.8}, {"def f(x):  ...", 0.5}};
//   tl::harvest::DedupResult r = tl::harvest::dedup(items, {});
//   // r.kept == {0}; r.removals[0] == {1, 0, "exact", 1.0}
//   DedupOptions o;
//   o.embed = [](const std::string& text) -> Result<std::vector<float>> { return my_embedding(text); };
//   TL_TRY(semantic_dedup(items, o, r, nullptr));  // drops survivors whose cosine to a better one >= 0.85
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace tl::harvest {

// Text -> embedding vector. Every call of one run must return the same dimension; an error aborts the
// pass (and the harvest) with that Status.
using EmbedFn = std::function<Result<std::vector<float>>(const std::string& text)>;

struct DedupOptions {
  bool exact = true;
  bool near = true;
  int num_perm = 256;
  int shingle = 5;  // words per shingle
  int bands = 32;   // num_perm must be divisible by bands
  double threshold = 0.7;
  uint64_t seed = 42;
  // Semantic pass: runs only when `embed` is set.
  EmbedFn embed;
  double semantic_threshold = 0.85;  // cosine
  int embed_max_tokens = 512;        // for the embedder the caller builds (the CLI truncates to it)
  std::string embed_model;           // label for report.json (the model directory)
};

struct DedupItem {
  std::string text;
  double quality = 0;
};

struct DedupRemoval {
  size_t removed = 0;
  size_t kept = 0;          // the surviving duplicate
  std::string reason;       // "exact" | "near" | "semantic"
  double similarity = 1.0;  // estimated Jaccard for near duplicates, cosine for semantic ones
};

struct DedupResult {
  std::vector<size_t> kept;  // ascending indices
  std::vector<DedupRemoval> removals;
};

DedupResult dedup(const std::vector<DedupItem>& items, const DedupOptions& options);

// Semantic pass over `result.kept` (the output of dedup() on the same items): embeds each survivor's
// text with options.embed, L2-normalises, and visits them from highest quality down (ties: lower index
// first), removing one whose cosine with an already-kept item is >= semantic_threshold; the removal
// names the most similar kept item. Updates result.kept and appends "semantic" removals. An all-zero
// embedding (e.g. empty text) cannot be compared: it is kept and never matches. Errors: the embed
// function's own, a dimension differing from the first, an empty or non-finite vector. `progress(done,
// total)` (may be null) is called after each embedding. Without options.embed it does nothing.
Status semantic_dedup(const std::vector<DedupItem>& items, const DedupOptions& options, DedupResult& result,
                      const std::function<void(int64_t done, int64_t total)>& progress);

// Building blocks, exposed for tests.
std::vector<uint64_t> shingle_hashes(const std::string& text, int words_per_shingle);
std::vector<uint32_t> minhash_signature(const std::vector<uint64_t>& shingles, int num_perm, uint64_t seed);
double estimated_jaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);
uint64_t normalized_hash(const std::string& text);
// Dot product of two float vectors, in 16 independent lanes so the compiler vectorises it without
// reassociation flags.
float dot_f32(const float* a, const float* b, size_t n);

}  // namespace tl::harvest
