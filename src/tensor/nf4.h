// NF4 4-bit quantisation with double quantisation, bit-exact with bitsandbytes (the QLoRA format).
//
// QLoRA keeps the frozen base model as NF4: blocks of 64 weights share one absmax, each weight becomes the
// nearest of 16 normal-float codes (bitsandbytes' decision tree and tie rules), two codes per byte with
// the first element in the high nibble. Double quantisation then stores the absmax values themselves in
// 8 bits: their mean is subtracted (the offset) and the rest is quantised in blocks of 256 against the
// signed 8-bit dynamic map, with an fp32 absmax per nested block. The float arithmetic follows
// bitsandbytes' CUDA kernels operation by operation (x * (1/absmax), not x / absmax; code * absmax with
// no fused multiply-add), so a checkpoint written here loads in bitsandbytes/transformers and the other
// way round, and tests/reference/nf4_reference.py checks every byte.
//
// Dequantisation works on element ranges, so a matmul can dequantise one slice of a weight at a time and
// never holds a full-precision copy of the model.
//
// Usage:
//   tl::Nf4Tensor q = tl::nf4_quantize(w, n, /*double_quant=*/true);
//   std::vector<float> rows(64 * 128);
//   tl::nf4_dequantize(rows.data(), q, /*begin=*/0, /*count=*/rows.size());
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tensor/kernels.h"

namespace tl {

inline constexpr int64_t kNf4BlockSize = 64;         // weights per absmax
inline constexpr int64_t kNf4NestedBlockSize = 256;  // absmax values per nested absmax

// The 16 NF4 code values (bitsandbytes get_4bit_type("nf4")), index = 4-bit code.
const std::array<float, 16>& nf4_code();
// create_dynamic_map(signed=True): the sorted 256-entry map the absmax values are quantised against.
// Its values are torch float32 arithmetic (linspace, means, powers of ten) and are stored in every
// checkpoint as `nested_quant_map`.
const std::array<float, 256>& nf4_dynamic_map();

// dQuantizeNF4: the 4-bit code of a value already scaled into [-1, 1]. Strict `>` against float32
// thresholds; NaN (a zero block: 0 * (1/0)) fails every test and gives code 0.
uint8_t nf4_code_of(float x);
// dQuantize<0>: the index of `x` in a sorted 256-entry map by the kernel's binary search and midpoint rule.
uint8_t dynamic_code_of(const std::array<float, 256>& map, float x);

// One quantised tensor (flattened; the caller keeps the shape).
struct Nf4Tensor {
  int64_t numel = 0;
  std::vector<uint8_t> packed;  // (numel + 1) / 2 bytes, element 2i in the high nibble of byte i
  bool double_quant = false;
  // Without double quantisation: the fp32 absmax of each block of 64. Empty with it.
  std::vector<float> absmax;
  // With double quantisation: one byte per block of 64 (an index into the dynamic map), an fp32 absmax
  // per 256 of those, and the offset that was subtracted before quantising them.
  std::vector<uint8_t> absmax_q;
  std::vector<float> nested_absmax;
  float offset = 0.0f;
  std::array<float, 256> nested_map{};  // the map absmax_q indexes (nf4_dynamic_map() unless loaded)

  int64_t blocks() const { return (numel + kNf4BlockSize - 1) / kNf4BlockSize; }
  // The absmax that dequantises block `b`: stored, or dynamic_map[q] * nested_absmax + offset.
  float block_absmax(int64_t b) const;
};

// Quantises w[0, n). Never fails: any float input (zeros, denormals, huge values) has a defined result.
// Full blocks with AVX-512 when `isa` is it (and the CPU has it): the same bytes for every ISA.
Nf4Tensor nf4_quantize(const float* w, int64_t n, bool double_quant, Isa isa = active_isa());

// out[0, count) = the dequantised elements [begin, begin + count) of `t` (any range inside the tensor),
// with the vectors of `isa` (the kernels' active one, TUNELOOP_ISA included, unless given; one the CPU
// lacks falls back to scalar): the result is identical to nf4_dequantize_naive's for every ISA.
void nf4_dequantize(float* out, const Nf4Tensor& t, int64_t begin, int64_t count, Isa isa = active_isa());
// The element-at-a-time reference the fast path is tested against.
void nf4_dequantize_naive(float* out, const Nf4Tensor& t, int64_t begin, int64_t count);

}  // namespace tl
