// NF4 quantisation: the scalar rules of bitsandbytes' kernels, an AVX-512 quantiser giving the same bytes,
// and AVX-512 and AVX2 dequantisers.
//
// Each function names the bitsandbytes kernel it mirrors. The scalar code is compiled for baseline x86-64
// (no FMA available), and the one multiply-then-add (absmax = map[q] * nested + offset) goes through a
// volatile so no build flag can ever fuse it: bitsandbytes runs those as two kernels, and a fused
// multiply-add would round once instead of twice and break bit-exactness.
#include "tensor/nf4.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tl {

namespace {

// get_4bit_type("nf4"), as float32.
constexpr std::array<float, 16> kNf4Code = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};

// create_dynamic_map(signed=True) as torch computes it in float32. Hard-coded rather than recomputed:
// torch.linspace's float32 rounding depends on its vectorised CPU kernel, which a plain formula does not
// reproduce; these are the values Debian's torch gives (checked bit for bit by nf4_test against the
// reference, which calls torch itself).
constexpr std::array<float, 256> kDynamicMap = {
    -0x1.fc6666p-1f, -0x1.f53332p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f, -0x1.df9998p-1f, -0x1.d86666p-1f,
    -0x1.d13334p-1f, -0x1.cap-1f, -0x1.c2ccccp-1f, -0x1.bb9998p-1f, -0x1.b46666p-1f, -0x1.ad3332p-1f,
    -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.979998p-1f, -0x1.906666p-1f, -0x1.893334p-1f, -0x1.82p-1f,
    -0x1.7acccep-1f, -0x1.73999ap-1f, -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56cccep-1f,
    -0x1.4f999ap-1f, -0x1.486666p-1f, -0x1.413334p-1f, -0x1.3ap-1f, -0x1.32ccccp-1f, -0x1.2b999ap-1f,
    -0x1.246668p-1f, -0x1.1d3334p-1f, -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.07999ap-1f, -0x1.006666p-1f,
    -0x1.f26668p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f, -0x1.b8ccccp-2f, -0x1.aa6664p-2f,
    -0x1.9cp-2f, -0x1.8d9998p-2f, -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626664p-2f, -0x1.54p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, -0x1.0cp-2f, -0x1.fb3334p-3f,
    -0x1.de6668p-3f, -0x1.c1999ap-3f, -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3332p-3f, -0x1.4e6666p-3f,
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f, -0x1.93d70ap-4f, -0x1.8851eap-4f,
    -0x1.7ccccep-4f, -0x1.7147aep-4f, -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb85p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, -0x1.09999ap-4f, -0x1.fc28f4p-5f,
    -0x1.e51ebap-5f, -0x1.ce147ap-5f, -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c28ep-5f, -0x1.fd70a4p-6f, -0x1.cf5c26p-6f,
    -0x1.a147aep-6f, -0x1.733334p-6f, -0x1.451eb8p-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, -0x1.e978d4p-8f, -0x1.c49ba6p-8f,
    -0x1.9fbe76p-8f, -0x1.7ae148p-8f, -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f, -0x1.eecbfep-11f, -0x1.b3d07cp-11f,
    -0x1.78d5p-11f, -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f,
    -0x1.27476ep-21f, 0x0.0p+0f, 0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f, 0x1.19ce0ap-12f, 0x1.8fc506p-12f,
    0x1.02de02p-11f, 0x1.3dd982p-11f, 0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, 0x1.0c49bap-8f, 0x1.3126e8p-8f,
    0x1.56041ap-8f, 0x1.7ae148p-8f, 0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
    0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f, 0x1.d1eb86p-7f, 0x1.170a3ep-6f,
    0x1.451eb8p-6f, 0x1.733334p-6f, 0x1.a147aep-6f, 0x1.cf5c26p-6f, 0x1.fd70a4p-6f, 0x1.15c28ep-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, 0x1.88f5c2p-5f, 0x1.ap-5f,
    0x1.b70a3ep-5f, 0x1.ce147ap-5f, 0x1.e51ebap-5f, 0x1.fc28f4p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f, 0x1.4eb85p-4f, 0x1.5a3d7p-4f,
    0x1.65c29p-4f, 0x1.7147aep-4f, 0x1.7ccccep-4f, 0x1.8851eap-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, 0x1.6b3332p-3f, 0x1.88p-3f,
    0x1.a4ccccp-3f, 0x1.c1999ap-3f, 0x1.de6668p-3f, 0x1.fb3334p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f, 0x1.626664p-2f, 0x1.70ccccp-2f,
    0x1.7f3334p-2f, 0x1.8d9998p-2f, 0x1.9cp-2f, 0x1.aa6664p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26668p-2f, 0x1.006666p-1f, 0x1.07999ap-1f, 0x1.0eccccp-1f,
    0x1.16p-1f, 0x1.1d3334p-1f, 0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
    0x1.413334p-1f, 0x1.486666p-1f, 0x1.4f999ap-1f, 0x1.56cccep-1f, 0x1.5ep-1f, 0x1.653334p-1f,
    0x1.6c6668p-1f, 0x1.73999ap-1f, 0x1.7acccep-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.979998p-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3332p-1f, 0x1.b46666p-1f, 0x1.bb9998p-1f,
    0x1.c2ccccp-1f, 0x1.cap-1f, 0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df9998p-1f, 0x1.e6ccccp-1f,
    0x1.eep-1f, 0x1.f53332p-1f, 0x1.fc6666p-1f, 0x1.0p+0f,
};

}  // namespace

const std::array<float, 16>& nf4_code() { return kNf4Code; }
const std::array<float, 256>& nf4_dynamic_map() { return kDynamicMap; }

// dQuantizeNF4's thresholds (the midpoints of the codes), in order: its tree is a search over them, so
// a code is also the number of thresholds x is above (NaN is above none: code 0, as the tree gives).
constexpr float kNf4Thresholds[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,  0.2035212516784668f,  0.2920137718319893f,  0.3893125355243683f,
    0.5016634166240692f,  0.6427869200706482f,  0.8614784181118011f};

// dQuantizeNF4 (csrc/kernels.cu): the tree of midpoints between adjacent codes, strict `>`.
uint8_t nf4_code_of(float x) {
  const float* t = kNf4Thresholds;
  if (x > t[7]) {
    if (x > t[11]) {
      if (x > t[13]) return x > t[14] ? 0b1111 : 0b1110;
      return x > t[12] ? 0b1101 : 0b1100;
    }
    if (x > t[9]) return x > t[10] ? 0b1011 : 0b1010;
    return x > t[8] ? 0b1001 : 0b1000;
  }
  if (x > t[3]) {
    if (x > t[5]) return x > t[6] ? 0b0111 : 0b0110;
    return x > t[4] ? 0b0101 : 0b0100;
  }
  if (x > t[1]) return x > t[2] ? 0b0011 : 0b0010;
  return x > t[0] ? 0b0001 : 0b0000;
}

// dQuantize<0> (csrc/kernels.cu): 7 halving steps from the middle of the map, then the neighbour on the
// side of x wins only when x is strictly past the float32 midpoint.
uint8_t dynamic_code_of(const std::array<float, 256>& map, float x) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = map[127];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[static_cast<size_t>(pivot)];
  }
  if (upper_pivot == 255) upper = map[255];
  if (lower_pivot == 0) lower = map[0];
  if (x > val) {
    float midpoint = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
  }
  float midpoint = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
}

float Nf4Tensor::block_absmax(int64_t b) const {
  if (!double_quant) return absmax[static_cast<size_t>(b)];
  // Two roundings, as bitsandbytes' two kernels do; the volatile keeps them from being fused.
  volatile float scaled =
      nested_map[absmax_q[static_cast<size_t>(b)]] * nested_absmax[static_cast<size_t>(b / kNf4NestedBlockSize)];
  return scaled + offset;
}

namespace {

// kQuantizeBlockwise's per-block reduction: fmaxf over |x| (fmaxf ignores NaN); padding is 0 and the
// reduction starts from -FLT_MAX, so an all-zero block gives 0.
float block_max_abs(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::fmax(m, std::fabs(x[i]));
  return m;
}

// One block of 64 as nf4_quantize's scalar loop does it: its absmax (returned) and 32 bytes.
float quantize_block_scalar(const float* x, int64_t n, uint8_t* out) {
  const float amax = block_max_abs(x, n);
  // The kernel scales by the reciprocal (1/0 = inf for a zero block; 0 * inf = NaN -> code 0).
  const float inv = 1.0f / amax;
  for (int64_t i = 0; i < n; i += 2) {
    // An odd tail's partner is the kernel's padding value 0, scaled like the rest.
    const float second = i + 1 < n ? x[i + 1] : 0.0f;
    out[i / 2] = static_cast<uint8_t>((nf4_code_of(x[i] * inv) << 4) | nf4_code_of(second * inv));
  }
  return amax;
}

#if defined(__x86_64__)
// A full block of 64 with AVX-512, the same bytes and absmax as quantize_block_scalar: the max of |x|
// skipping NaN as fmax does (an ordered compare, then one exact reduction), the same one multiply by
// the reciprocal, 15 ordered compares counted per value, and nibble pairs joined by a multiply-add.
// GCC 12's avx512fintrin.h reads a deliberately undefined register in its reductions and narrowing
// conversions and warns at every inlined use (GCC bug 105593, fixed in 13): silenced for this function.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
__attribute__((target("avx512f,avx512bw"))) float quantize_block64_avx512(const float* x, uint8_t* out) {
  const __m512i abs_bits = _mm512_set1_epi32(0x7fffffff);
  __m512 v[4], m = _mm512_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm512_loadu_ps(x + 16 * j);
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v[j]), abs_bits));
    m = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, m, _CMP_GT_OQ), m, a);
  }
  const float amax = _mm512_reduce_max_ps(m);  // no NaN is left in m: exact in any order
  const __m512 inv = _mm512_set1_ps(1.0f / amax);
  const __m512i one = _mm512_set1_epi32(1);
  const __m128i weights = _mm_set1_epi16(0x0110);  // bytes 16, 1: (code 2i) * 16 + code 2i+1
  for (int j = 0; j < 4; ++j) {
    const __m512 xs = _mm512_mul_ps(v[j], inv);
    __m512i code = _mm512_setzero_si512();
    for (float t : kNf4Thresholds)
      code = _mm512_mask_add_epi32(code, _mm512_cmp_ps_mask(xs, _mm512_set1_ps(t), _CMP_GT_OQ), code, one);
    const __m128i pairs = _mm_maddubs_epi16(_mm512_cvtepi32_epi8(code), weights);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 8 * j), _mm_packus_epi16(pairs, pairs));
  }
  return amax;
}
#pragma GCC diagnostic pop
#endif

}  // namespace

Nf4Tensor nf4_quantize(const float* w, int64_t n, bool double_quant, Isa isa) {
  TL_CHECK(n >= 0);
  const bool avx512 = isa == Isa::kAvx512 && (isa == active_isa() || cpu_supports(isa));
  Nf4Tensor t;
  t.numel = n;
  t.packed.assign(static_cast<size_t>((n + 1) / 2), 0);
  const int64_t blocks = t.blocks();
  std::vector<float> absmax(static_cast<size_t>(blocks));
  // Full blocks with AVX-512 where the CPU has it, the same bytes as the scalar loop: 600-700 M elements/s
  // on one Zen 4 core against the scalar loop's 57 (a 7B model's QLoRA start-up took minutes). The blocks
  // are independent, but the thread pool gained little (670-880) and raised the peak RSS of the 213M
  // QLoRA bench run from 313 to 357 MB: its threads then start during the load, and an empty parallel
  // region there alone did the same.
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * kNf4BlockSize, len = std::min(n - lo, kNf4BlockSize);
    uint8_t* out = t.packed.data() + lo / 2;
#if defined(__x86_64__)
    if (avx512 && len == kNf4BlockSize) {
      absmax[static_cast<size_t>(b)] = quantize_block64_avx512(w + lo, out);
      continue;
    }
#endif
    absmax[static_cast<size_t>(b)] = quantize_block_scalar(w + lo, len, out);
  }
  if (!double_quant || blocks == 0) {
    t.absmax = std::move(absmax);
    return t;
  }
  t.double_quant = true;
  t.nested_map = kDynamicMap;
  // offset = absmax.mean(): torch reduces on the device in an order of its choosing; we pin a
  // sequential double sum rounded once to float (the reference does the same).
  double sum = 0.0;
  for (float a : absmax) sum += static_cast<double>(a);
  t.offset = static_cast<float>(sum / static_cast<double>(blocks));
  for (float& a : absmax) a -= t.offset;
  // quantize_blockwise(absmax - offset, blocksize=256): kQuantizeBlockwise with the General8bit path.
  const int64_t nested = (blocks + kNf4NestedBlockSize - 1) / kNf4NestedBlockSize;
  t.nested_absmax.resize(static_cast<size_t>(nested));
  t.absmax_q.resize(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < nested; ++b) {
    const int64_t lo = b * kNf4NestedBlockSize, hi = std::min(blocks, lo + kNf4NestedBlockSize);
    const float amax = block_max_abs(absmax.data() + lo, hi - lo);
    t.nested_absmax[static_cast<size_t>(b)] = amax;
    const float inv = 1.0f / amax;
    for (int64_t i = lo; i < hi; ++i) {
      t.absmax_q[static_cast<size_t>(i)] = dynamic_code_of(kDynamicMap, absmax[static_cast<size_t>(i)] * inv);
    }
  }
  return t;
}

void nf4_dequantize_naive(float* out, const Nf4Tensor& t, int64_t begin, int64_t count) {
  TL_CHECK(begin >= 0 && count >= 0 && begin + count <= t.numel);
  for (int64_t k = 0; k < count; ++k) {
    const int64_t i = begin + k;
    const uint8_t byte = t.packed[static_cast<size_t>(i / 2)];
    const uint8_t code = (i % 2 == 0) ? static_cast<uint8_t>(byte >> 4) : static_cast<uint8_t>(byte & 15);
    out[k] = kNf4Code[code] * t.block_absmax(i / kNf4BlockSize);
  }
}

namespace {

#if defined(__x86_64__)
// Elements [i, end), both multiples of 16 (the caller does the ends): each 16 starts on a byte and lies
// inside one block of 64. The 8 bytes are duplicated, the even lanes shifted by 4 and masked to codes,
// which one 16-entry permute looks up; then the block's absmax multiplies. Multiplication only, so the
// result equals the scalar path exactly. The loops live in the target functions, so the tables stay in
// registers: a call per 8 elements from baseline code took 454 us for 1M elements, against 146 (AVX2)
// and 93 (AVX-512) now, on Zen 4.
__attribute__((target("avx512f"))) void dequantize_avx512(float* out, const Nf4Tensor& t, int64_t i, int64_t end) {
  const __m512 table = _mm512_loadu_ps(kNf4Code.data());
  const __m512i shifts = _mm512_set_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
  const __m512i nibble = _mm512_set1_epi32(15);
  const uint8_t* bytes = t.packed.data();
  while (i < end) {
    const int64_t block_end = std::min(end, (i / kNf4BlockSize + 1) * kNf4BlockSize);
    const __m512 scale = _mm512_set1_ps(t.block_absmax(i / kNf4BlockSize));
    for (; i < block_end; i += 16, out += 16) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + i / 2));
      const __m512i dup = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));  // b0 b0 b1 b1 ... b7 b7
      const __m512i idx = _mm512_and_si512(_mm512_srlv_epi32(dup, shifts), nibble);
      _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_permutexvar_ps(idx, table), scale));
    }
  }
}

// The same in 8s with AVX2 (i and end multiples of 8): two 8-entry permutes and a blend on bit 3 of the
// code.
__attribute__((target("avx2"))) void dequantize_avx2(float* out, const Nf4Tensor& t, int64_t i, int64_t end) {
  const __m256 lo_table = _mm256_loadu_ps(kNf4Code.data());
  const __m256 hi_table = _mm256_loadu_ps(kNf4Code.data() + 8);
  const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0);
  const __m256i nibble = _mm256_set1_epi32(15);
  const uint8_t* bytes = t.packed.data();
  while (i < end) {
    const int64_t block_end = std::min(end, (i / kNf4BlockSize + 1) * kNf4BlockSize);
    const __m256 scale = _mm256_set1_ps(t.block_absmax(i / kNf4BlockSize));
    for (; i < block_end; i += 8, out += 8) {
      int32_t four;
      __builtin_memcpy(&four, bytes + i / 2, 4);
      const __m128i b = _mm_cvtsi32_si128(four);
      __m256i idx = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));  // b0 b0 b1 b1 b2 b2 b3 b3
      idx = _mm256_and_si256(_mm256_srlv_epi32(idx, shifts), nibble);
      const __m256 lo = _mm256_permutevar8x32_ps(lo_table, idx);
      const __m256 hi = _mm256_permutevar8x32_ps(hi_table, idx);
      const __m256 code = _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
      _mm256_storeu_ps(out, _mm256_mul_ps(code, scale));
    }
  }
}

#endif

}  // namespace

void nf4_dequantize(float* out, const Nf4Tensor& t, int64_t begin, int64_t count, Isa isa) {
  TL_CHECK(begin >= 0 && count >= 0 && begin + count <= t.numel);
#if defined(__x86_64__)
  // active_isa() is one the CPU has; only another is checked (this runs per row of a QLoRA panel).
  if (isa != active_isa() && !cpu_supports(isa)) isa = Isa::kScalar;
  const int step = isa == Isa::kAvx512 ? 16 : isa == Isa::kAvx2 ? 8 : 0;
  if (step) {
    const int64_t end = begin + count;
    // Scalar up to a multiple of the step, vectors while whole ones fit, scalar for the rest.
    const int64_t head = std::min(end, (begin + step - 1) / step * step);
    nf4_dequantize_naive(out, t, begin, head - begin);
    const int64_t body_end = head + (end - head) / step * step;
    if (step == 16) dequantize_avx512(out + (head - begin), t, head, body_end);
    else dequantize_avx2(out + (head - begin), t, head, body_end);
    nf4_dequantize_naive(out + (body_end - begin), t, body_end, end - body_end);
    return;
  }
#endif
  nf4_dequantize_naive(out, t, begin, count);
}

}  // namespace tl
