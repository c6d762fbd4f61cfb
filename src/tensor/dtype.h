// Element types of stored tensors and their conversions to f32.
//
// The engine computes in f32; bf16/f16 exist as storage formats of checkpoints. Conversions are exact
// (every bf16 and f16 value is representable in f32).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace tl {

enum class DType : uint8_t { kF32, kBF16, kF16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);                          // safetensors spelling: "F32", "BF16", "F16"
std::optional<DType> dtype_from_name(std::string_view s);  // inverse of dtype_name

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even, as torch's float -> bfloat16 conversion; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t h);

// Converts `n` elements of type `src_type` at `src` (possibly unaligned) to f32.
void convert_to_f32(float* dst, const void* src, DType src_type, size_t n);

}  // namespace tl
