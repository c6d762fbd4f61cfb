#include "model/kv_cache.h"

namespace tl {

KvCache::KvCache(const ModelConfig& config, int64_t capacity)
    : kv_heads_(config.num_kv_heads), head_dim_(config.head_dim), capacity_(capacity) {
  keys_.assign(static_cast<size_t>(config.num_layers * kv_heads_ * head_dim_ * capacity_), 0.0f);
  values_.assign(static_cast<size_t>(config.num_layers * kv_heads_ * head_dim_ * capacity_), 0.0f);
}

}  // namespace tl
