// Exact + MinHash-LSH near-duplicate removal (see dedup.h for the contract).
//
// Permutations are the classic universal-hash family h_i(x) = (a_i * x + b_i) mod 2^64, keeping the
// high 32 bits: one multiply-add per (shingle, permutation), which the compiler vectorises; a and b come
// from splitmix64 of the seed, so signatures are reproducible across runs and machines.
//
// The semantic pass is greedy like the others but compares each candidate with every kept item (no
// LSH): embedding dominates its cost by orders of magnitude (one model forward per item against one
// dot product of `hidden` floats per pair), so the exact scan is affordable and misses nothing.
#include "harvest/dedup.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace tl::harvest {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const char* p, size_t n, uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::string cur;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '_' || u >= 0x80) {
      cur += static_cast<char>(std::tolower(u));
    } else {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
      // Punctuation is part of code's shape: keep it as one-character words.
      if (!std::isspace(u)) words.emplace_back(1, c);
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

}  // namespace

uint64_t normalized_hash(const std::string& text) {
  std::string norm;
  norm.reserve(text.size());
  bool space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !norm.empty();
      continue;
    }
    if (space) norm += ' ';
    space = false;
    norm += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return fnv1a(norm.data(), norm.size());
}

std::vector<uint64_t> shingle_hashes(const std::string& text, int words_per_shingle) {
  std::vector<std::string> words = words_of(text);
  std::vector<uint64_t> out;
  size_t k = static_cast<size_t>(std::max(1, words_per_shingle));
  if (words.size() < k) {
    uint64_t h = 1469598103934665603ull;
    for (const auto& w : words) h = fnv1a(w.data(), w.size(), fnv1a(" ", 1, h));
    if (!words.empty()) out.push_back(h);
    return out;
  }
  out.reserve(words.size() - k + 1);
  for (size_t i = 0; i + k <= words.size(); ++i) {
    uint64_t h = 1469598103934665603ull;
    for (size_t j = 0; j < k; ++j) h = fnv1a(words[i + j].data(), words[i + j].size(), fnv1a(" ", 1, h));
    out.push_back(h);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<uint32_t> minhash_signature(const std::vector<uint64_t>& shingles, int num_perm, uint64_t seed) {
  std::vector<uint64_t> a(static_cast<size_t>(num_perm)), b(static_cast<size_t>(num_perm));
  uint64_t state = seed;
  for (int i = 0; i < num_perm; ++i) {
    a[static_cast<size_t>(i)] = splitmix64(state) | 1;
    b[static_cast<size_t>(i)] = splitmix64(state);
  }
  std::vector<uint32_t> sig(static_cast<size_t>(num_perm), UINT32_MAX);
  for (uint64_t raw : shingles) {
    // Finalise first: the linear family is only as good as its input's randomness, and callers may
    // pass structured values.
    uint64_t x = raw ^ (raw >> 33);
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    for (size_t i = 0; i < sig.size(); ++i) {
      uint32_t v = static_cast<uint32_t>((a[i] * x + b[i]) >> 32);
      sig[i] = std::min(sig[i], v);
    }
  }
  return sig;
}

float dot_f32(const float* a, const float* b, size_t n) {
  constexpr size_t kLanes = 16;
  float acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (float v : acc) s += v;
  return s;
}

double estimated_jaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  if (a.empty() || a.size() != b.size()) return 0;
  size_t eq = 0;
  for (size_t i = 0; i < a.size(); ++i) eq += a[i] == b[i];
  return static_cast<double>(eq) / static_cast<double>(a.size());
}

DedupResult dedup(const std::vector<DedupItem>& items, const DedupOptions& options) {
  DedupResult r;
  std::vector<size_t> order(items.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return items[x].quality > items[y].quality; });
  std::unordered_map<uint64_t, size_t> exact_kept;
  int bands = std::max(1, options.bands);
  size_t rows = static_cast<size_t>(options.num_perm / bands);
  std::vector<std::unordered_map<uint64_t, std::vector<size_t>>> buckets(static_cast<size_t>(bands));
  std::vector<std::vector<uint32_t>> sigs(items.size());
  std::vector<bool> keep(items.size(), false);
  for (size_t idx : order) {
    const auto& item = items[idx];
    uint64_t h = normalized_hash(item.text);
    if (options.exact) {
      auto it = exact_kept.find(h);
      if (it != exact_kept.end()) {
        r.removals.push_back({idx, it->second, "exact", 1.0});
        continue;
      }
    }
    if (options.near && rows > 0) {
      sigs[idx] = minhash_signature(shingle_hashes(item.text, options.shingle), options.num_perm, options.seed);
      const auto& sig = sigs[idx];
      std::vector<uint64_t> keys(static_cast<size_t>(bands));
      size_t best = SIZE_MAX;
      double best_sim = 0;
      std::unordered_set<size_t> checked;
      for (size_t band = 0; band < keys.size(); ++band) {
        keys[band] = fnv1a(reinterpret_cast<const char*>(sig.data() + band * rows), rows * sizeof(uint32_t));
        auto it = buckets[band].find(keys[band]);
        if (it == buckets[band].end()) continue;
        for (size_t other : it->second) {
          if (!checked.insert(other).second) continue;
          double sim = estimated_jaccard(sig, sigs[other]);
          if (sim >= options.threshold && sim > best_sim) {
            best = other;
            best_sim = sim;
          }
        }
      }
      if (best != SIZE_MAX) {
        r.removals.push_back({idx, best, "near", best_sim});
        continue;
      }
      for (size_t band = 0; band < keys.size(); ++band) buckets[band][keys[band]].push_back(idx);
    }
    keep[idx] = true;
    exact_kept.emplace(h, idx);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (keep[i]) r.kept.push_back(i);
  }
  return r;
}

Status semantic_dedup(const std::vector<DedupItem>& items, const DedupOptions& options, DedupResult& result,
                      const std::function<void(int64_t done, int64_t total)>& progress) {
  if (!options.embed) return Status::ok();
  std::vector<size_t> order = result.kept;  // ascending, so the stable sort breaks ties by index
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return items[x].quality > items[y].quality; });
  const int64_t total = static_cast<int64_t>(order.size());
  // Where an error names the item: its index and first line (for code, the signature).
  auto where = [&](size_t idx) {
    const std::string& t = items[idx].text;
    std::string first = t.substr(0, std::min(t.find('\n'), size_t{80}));
    return "item " + std::to_string(idx) + " ('" + first + "')";
  };
  size_t dim = 0;
  std::vector<float> kept_vecs;     // (kept, dim) L2-normalised, in visiting order
  std::vector<size_t> kept_index;   // item index of each row of kept_vecs
  std::vector<float> scores;
  std::vector<bool> removed(items.size(), false);
  for (int64_t k = 0; k < total; ++k) {
    const size_t idx = order[static_cast<size_t>(k)];
    Result<std::vector<float>> emb = options.embed(items[idx].text);
    if (!emb.is_ok()) return emb.status().with_context("semantic dedup: embedding " + where(idx));
    std::vector<float>& v = *emb;
    if (v.empty()) return invalid_argument("semantic dedup: embedding {} is empty", where(idx));
    if (dim == 0) dim = v.size();
    if (v.size() != dim)
      return invalid_argument("semantic dedup: embedding {} has dimension {}, expected {} (the first one's)",
                              where(idx), v.size(), dim);
    double norm2 = 0;
    for (float x : v) {
      if (!std::isfinite(x)) return invalid_argument("semantic dedup: embedding {} has a non-finite value", where(idx));
      norm2 += static_cast<double>(x) * x;
    }
    if (progress) progress(k + 1, total);
    if (norm2 == 0) continue;  // no direction, no cosine: kept, and never a match for a later item
    const float inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (float& x : v) x *= inv;
    const size_t m = kept_index.size();
    scores.resize(m);
    for (size_t j = 0; j < m; ++j) scores[j] = dot_f32(v.data(), &kept_vecs[j * dim], dim);
    size_t best = SIZE_MAX;
    float best_cos = 0;
    for (size_t j = 0; j < m; ++j) {
      if (scores[j] >= options.semantic_threshold && (best == SIZE_MAX || scores[j] > best_cos)) {
        best = j;
        best_cos = scores[j];
      }
    }
    if (best != SIZE_MAX) {
      // Rounding can push a self-similar pair a hair past 1; the report shows a cosine.
      result.removals.push_back({idx, kept_index[best], "semantic", std::min(1.0, static_cast<double>(best_cos))});
      removed[idx] = true;
      continue;
    }
    kept_vecs.insert(kept_vecs.end(), v.begin(), v.end());
    kept_index.push_back(idx);
  }
  std::erase_if(result.kept, [&](size_t idx) { return removed[idx]; });
  return Status::ok();
}

}  // namespace tl::harvest
