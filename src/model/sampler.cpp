#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace tl {

int32_t Sampler::sample(std::span<const float> logits) {
  const int32_t n = static_cast<int32_t>(logits.size());
  if (options_.temperature <= 0.0f) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; ++i)
      if (logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(best)]) best = i;
    return best;
  }
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) {
    float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la != lb ? la > lb : a < b;
  };
  int32_t keep = n;
  if (options_.top_k > 0 && options_.top_k < n) {
    keep = options_.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
  } else {
    std::sort(order.begin(), order.end(), by_logit);
  }
  const float inv_t = 1.0f / options_.temperature;
  const float max_l = logits[static_cast<size_t>(order[0])] * inv_t;
  std::vector<double> probs(static_cast<size_t>(keep));
  double total = 0;
  for (int32_t i = 0; i < keep; ++i) {
    probs[static_cast<size_t>(i)] = std::exp(static_cast<double>(logits[static_cast<size_t>(order[static_cast<size_t>(i)])] * inv_t - max_l));
    total += probs[static_cast<size_t>(i)];
  }
  if (options_.top_p < 1.0f) {
    // Keep the smallest prefix whose mass reaches top_p (at least one token).
    double cum = 0;
    int32_t cut = keep;
    for (int32_t i = 0; i < keep; ++i) {
      cum += probs[static_cast<size_t>(i)] / total;
      if (cum >= options_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    total = std::accumulate(probs.begin(), probs.begin() + keep, 0.0);
  }
  std::uniform_real_distribution<double> uni(0.0, total);
  double r = uni(rng_);
  for (int32_t i = 0; i < keep; ++i) {
    r -= probs[static_cast<size_t>(i)];
    if (r < 0) return order[static_cast<size_t>(i)];
  }
  return order[static_cast<size_t>(keep - 1)];
}

}  // namespace tl
