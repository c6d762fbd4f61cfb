#include "tensor/rope.h"

#include <cmath>

#include "tensor/thread_pool.h"

namespace tl {

RopeTable rope_table(const int32_t* positions, int64_t rows, const float* inv_freq, int64_t head_dim) {
  RopeTable t;
  t.half = head_dim / 2;
  t.cos.resize(static_cast<size_t>(rows * t.half));
  t.sin.resize(static_cast<size_t>(rows * t.half));
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < t.half; ++i) {
      const float angle = pos * inv_freq[i];
      t.cos[static_cast<size_t>(r * t.half + i)] = std::cos(angle);
      t.sin[static_cast<size_t>(r * t.half + i)] = std::sin(angle);
    }
  }
  return t;
}

namespace {
// Rotates each head's pairs (i, i + half) by the table's angle times `sign` (+1 forward, -1 inverse).
void rope_rotate(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim, const RopeTable& table,
                 float sign) {
  const int64_t half = head_dim / 2;
  auto run = [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* c = &table.cos[static_cast<size_t>(r * half)];
      const float* s = &table.sin[static_cast<size_t>(r * half)];
      float* row = x + r * row_stride;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = row + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half], sn = sign * s[i];
          v[i] = a * c[i] - b * sn;
          v[i + half] = b * c[i] + a * sn;
        }
      }
    }
  };
  parallel_rows(rows, n_heads * head_dim, run);
}
}  // namespace

void rope_apply(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim, const RopeTable& table) {
  rope_rotate(x, rows, row_stride, n_heads, head_dim, table, 1.0f);
}

void rope_apply_inverse(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                        const RopeTable& table) {
  rope_rotate(x, rows, row_stride, n_heads, head_dim, table, -1.0f);
}

void rope_forward(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                  const int32_t* positions, const float* inv_freq) {
  rope_apply(x, rows, row_stride, n_heads, head_dim, rope_table(positions, rows, inv_freq, head_dim));
}

}  // namespace tl
