// Sampler: picks the next token from logits. temperature 0 is greedy (argmax, lowest id on ties, as
// torch.argmax); otherwise the transformers order of warpers: temperature, then top-k, then top-p
// (smallest set of most likely tokens whose probability reaches top_p), then a draw from a seeded
// generator, so a (seed, logits) sequence always gives the same tokens.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace tl {

struct SamplingOptions {
  float temperature = 0.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplingOptions options) : options_(options), rng_(options.seed) {}
  int32_t sample(std::span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace tl
