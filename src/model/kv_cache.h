// KvCache: keys and values of every layer for the tokens processed so far, so decoding a new token
// costs one token's work instead of the whole prefix.
//
// Layout per layer and KV head: keys transposed, (head_dim, capacity), and values (capacity, head_dim):
// the two row-major B operands of attention's GEMMs (S = Q K^T, O = P V), read in place.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace tl {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t capacity);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  void clear() { length_ = 0; }
  void truncate(int64_t n) { length_ = n < length_ ? n : length_; }

  // kt(layer, kv_head) -> (head_dim, stride()); v(layer, kv_head) -> (capacity, head_dim)
  float* kt(int64_t layer, int64_t kv_head) { return keys_.data() + (layer * kv_heads_ + kv_head) * head_dim_ * capacity_; }
  float* v(int64_t layer, int64_t kv_head) { return values_.data() + (layer * kv_heads_ + kv_head) * capacity_ * head_dim_; }
  // Row length of the transposed keys.
  int64_t stride() const { return capacity_; }

 private:
  friend class Model;
  int64_t kv_heads_, head_dim_, capacity_;
  int64_t length_ = 0;
  std::vector<float> keys_, values_;
};

}  // namespace tl
