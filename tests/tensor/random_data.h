// Seeded N(0, scale^2) test data, shared by the tensor tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace tl::test_data {

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace tl::test_data
