// Dedup: exact duplicates after whitespace/case normalisation, near duplicates by MinHash LSH at the
// 0.7 Jaccard threshold, distinct texts kept, and the highest-quality member surviving.
#include <gtest/gtest.h>

#include "harvest/dedup.h"

namespace tl::harvest {
namespace {

const char* kBase =
    "def parse_duration(text, default=0):\n"
    "    if not text:\n        return default\n    unit = text[-1]\n    value = int(text[:-1])\n"
    "    if unit == 's':\n        return value\n    elif unit == 'm':\n        return value * 60\n"
    "    elif unit == 'h':\n        return value * 3600\n    raise ValueError('bad duration: ' + text)\n";

TEST(DedupTest, ExactAfterNormalisation) {
  std::string spaced = kBase;
  for (size_t p = 0; (p = spaced.find("    ", p)) != std::string::npos; p += 2) spaced.replace(p, 4, "  ");
  DedupResult r = dedup({{kBase, 0.5}, {spaced, 0.9}}, {});
  ASSERT_EQ(r.kept, std::vector<size_t>{1});  // the higher-quality copy survives
  ASSERT_EQ(r.removals.size(), 1u);
  EXPECT_EQ(r.removals[0].removed, 0u);
  EXPECT_EQ(r.removals[0].kept, 1u);
  EXPECT_EQ(r.removals[0].reason, "exact");
}

TEST(DedupTest, NearDuplicateRemoved) {
  std::string renamed = kBase;
  renamed.replace(renamed.find("parse_duration"), 14, "parse_duration_legacy");
  renamed.replace(renamed.find("bad duration"), 12, "bad duration value");
  double sim = estimated_jaccard(minhash_signature(shingle_hashes(kBase, 5), 256, 42),
                                 minhash_signature(shingle_hashes(renamed, 5), 256, 42));
  EXPECT_GE(sim, 0.7);
  EXPECT_LT(sim, 1.0);
  DedupResult r = dedup({{kBase, 0.8}, {renamed, 0.8}}, {});
  ASSERT_EQ(r.kept, std::vector<size_t>{0});  // equal quality: the earlier one survives
  ASSERT_EQ(r.removals.size(), 1u);
  EXPECT_EQ(r.removals[0].reason, "near");
  EXPECT_GE(r.removals[0].similarity, 0.7);
}

TEST(DedupTest, DistinctTextsKept) {
  const char* other =
      "int ring_push(struct ring *r, int value) {\n  if (r == NULL) return -1;\n"
      "  if (r->count == r->capacity) return -1;\n  r->data[(r->head + r->count) % r->capacity] = value;\n"
      "  r->count++;\n  return 0;\n}\n";
  DedupResult r = dedup({{kBase, 0.5}, {other, 0.5}}, {});
  EXPECT_EQ(r.kept, (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(r.removals.empty());
}

TEST(DedupTest, JaccardEstimateIsCloseToExact) {
  // Two sets of 200 shingles sharing 100: true Jaccard 1/3; 256 permutations give about ±0.06.
  std::vector<uint64_t> a, b;
  for (uint64_t i = 0; i < 200; ++i) a.push_back(i * 7919 + 1);
  for (uint64_t i = 100; i < 300; ++i) b.push_back(i * 7919 + 1);
  double est = estimated_jaccard(minhash_signature(a, 256, 1), minhash_signature(b, 256, 1));
  EXPECT_NEAR(est, 1.0 / 3.0, 0.09);
}

}  // namespace
}  // namespace tl::harvest
