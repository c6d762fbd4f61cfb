// Rotary position embedding in Hugging Face's `rotate_half` convention: for each head vector x of size
// D, with half = D/2, angle_i = pos * inv_freq[i] (f32 product, as transformers computes it):
//   out[i]        = x[i] * cos_i - x[i + half] * sin_i
//   out[i + half] = x[i + half] * cos_i + x[i] * sin_i
#pragma once

#include <cstdint>

namespace tl {

// x: (rows, row_stride) with `n_heads` head vectors of `head_dim` at the start of each row; row r is at
// position positions[r]. Rotates in place.
void rope_forward(float* x, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                  const int32_t* positions, const float* inv_freq);

}  // namespace tl
