// Rotary position embedding in Hugging Face's `rotate_half` convention: for each head vector x of size
// D, with half = D/2, angle_i = pos * inv_freq[i] (an f32 product, as transformers computes it):
//   out[i]        = x[i] * cos_i - x[i + half] * sin_i
//   out[i + half] = x[i + half] * cos_i + x[i] * sin_i
// The cos/sin table depends only on positions, so a forward builds it once and every layer reuses it.
#pragma once

#include <cstdint>
#include <vector>

namespace tl {

struct RopeTable {
  int64_t half = 0;
  std::vector<float> cos, sin;  // (rows, half)
};

RopeTable rope_table(const int32_t* positions, int64_t rows, const float* inv_freq, int64_t head_dim);

// x: (rows, row_stride) with `n_heads` head vectors of `head_dim` at the start of each row; row r uses
// table row r. Rotates in place.
void rope_apply(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim, const RopeTable& table);
// The inverse rotation R^T (R is orthogonal): the gradient of rope_apply, applied in place.
void rope_apply_inverse(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                        const RopeTable& table);

// Both steps at once (for single uses and tests).
void rope_forward(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                  const int32_t* positions, const float* inv_freq);

}  // namespace tl
