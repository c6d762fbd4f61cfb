// Kernel bodies written once over a vector type V, compiled three times: kernels_avx512.cpp (V = 16
// floats), kernels_avx2.cpp (8 floats, FMA) and kernels_scalar.cpp (1 float). Each includes this file in
// its own translation unit with its own -m flags; everything here has internal linkage (anonymous
// namespace) so the three copies never merge at link time (which would be an ODR violation that could run
// AVX-512 code on a CPU without it).
//
// Tails shorter than V::W fall back to the scalar type S inside the same function, using the same exp
// polynomial, so a row is computed the same way whatever its length (softmax masks its tails instead).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensor/kernels.h"

#if defined(TL_ISA_AVX512) || defined(TL_ISA_AVX2)
#include <immintrin.h>
#endif

namespace {

struct VScalar {
  using R = float;
  static constexpr int W = 1;
  static R zero() { return 0.0f; }
  static R set1(float x) { return x; }
  static R load(const float* p) { return *p; }
  // The first n (< W) lanes from p, `fill` in the rest; store_n writes only the first n lanes.
  static R load_n(const float* p, int64_t n, float fill) { return n > 0 ? *p : fill; }
  static void store_n(float* p, R v, int64_t n) {
    if (n > 0) *p = v;
  }
  static void store(float* p, R v) { *p = v; }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R div(R a, R b) { return a / b; }
  static R fmadd(R a, R b, R c) { return std::fma(a, b, c); }
  static R max(R a, R b) { return a > b ? a : b; }
  static float hsum(R a) { return a; }
  static float hmax(R a) { return a; }
  // Cephes-style expf: range reduction by ln2 (split constant) and a degree-5 polynomial, ~1 ulp.
  // Inputs are clamped to [-87.3, 88] in every ISA so results agree across them; below -87.3 gives 0.
  static R exp(R x) {
    if (x < -87.3365447504019f) return 0.0f;  // below FLT_MIN: flush to zero, as every ISA does
    x = std::min(88.0f, x);
    float fx = std::nearbyint(x * 1.44269504088896341f);
    x = x - fx * 0.693359375f;
    x = x + fx * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = std::fma(y, x, 1.3981999507e-3f);
    y = std::fma(y, x, 8.3334519073e-3f);
    y = std::fma(y, x, 4.1665795894e-2f);
    y = std::fma(y, x, 1.6666665459e-1f);
    y = std::fma(y, x, 5.0000001201e-1f);
    y = std::fma(y, x * x, x + 1.0f);
    return std::ldexp(y, static_cast<int>(fx));
  }
};

#if defined(TL_ISA_AVX512)
struct VVec {
  using R = __m512;
  static constexpr int W = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(float x) { return _mm512_set1_ps(x); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static __mmask16 first(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }
  static R load_n(const float* p, int64_t n, float fill) { return _mm512_mask_loadu_ps(set1(fill), first(n), p); }
  static void store_n(float* p, R v, int64_t n) { _mm512_mask_storeu_ps(p, first(n), v); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static float hsum(R a) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(R a) {
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static R exp(R x) {
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365447504019f), _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-87.3365447504019f), x));
    R fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fmadd_ps(fx, _mm512_set1_ps(2.12194440e-4f), x);
    R y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~tiny), _mm512_scalef_ps(y, fx));
  }
};
#elif defined(TL_ISA_AVX2)
struct VVec {
  using R = __m256;
  static constexpr int W = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R set1(float x) { return _mm256_set1_ps(x); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static __m256i first(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static R load_n(const float* p, int64_t n, float fill) {
    const __m256i m = first(n);
    return _mm256_blendv_ps(set1(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store_n(float* p, R v, int64_t n) { _mm256_maskstore_ps(p, first(n), v); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static float hsum(R a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(R a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static R exp(R x) {
    const R keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365447504019f), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.3365447504019f), x));
    R fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fmadd_ps(fx, _mm256_set1_ps(2.12194440e-4f), x);
    R y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    // 2^fx: build the exponent bits directly; the clamp to [-87.3, 88] keeps fx in [-126, 127].
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    R scale = _mm256_castsi256_ps(e);
    return _mm256_and_ps(keep, _mm256_mul_ps(y, scale));
  }
};
#else
using VVec = VScalar;
#endif

using V = VVec;
using S = VScalar;

float k_dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  V::R acc0 = V::zero(), acc1 = V::zero(), acc2 = V::zero(), acc3 = V::zero();
  if constexpr (V::W > 1) {
    for (; i + 4 * V::W <= n; i += 4 * V::W) {
      acc0 = V::fmadd(V::load(a + i), V::load(b + i), acc0);
      acc1 = V::fmadd(V::load(a + i + V::W), V::load(b + i + V::W), acc1);
      acc2 = V::fmadd(V::load(a + i + 2 * V::W), V::load(b + i + 2 * V::W), acc2);
      acc3 = V::fmadd(V::load(a + i + 3 * V::W), V::load(b + i + 3 * V::W), acc3);
    }
    for (; i + V::W <= n; i += V::W) acc0 = V::fmadd(V::load(a + i), V::load(b + i), acc0);
  }
  float s = V::hsum(V::add(V::add(acc0, acc1), V::add(acc2, acc3)));
  for (; i < n; ++i) s = std::fma(a[i], b[i], s);
  return s;
}

// y += a * x
void k_axpy(float* y, float a, const float* x, int64_t n) {
  int64_t i = 0;
  V::R av = V::set1(a);
  for (; i + V::W <= n; i += V::W) V::store(y + i, V::fmadd(av, V::load(x + i), V::load(y + i)));
  for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

// HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w, in f32; rstd (rows) receives the rsqrt when non-null.
void k_rmsnorm_rstd(float* out, float* rstd, const float* in, const float* w, int64_t rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * dim;
    float* y = out + r * dim;
    float ss = k_dot(x, x, dim);
    float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    if (rstd) rstd[r] = inv;
    int64_t i = 0;
    V::R iv = V::set1(inv);
    for (; i + V::W <= dim; i += V::W) V::store(y + i, V::mul(V::load(w + i), V::mul(V::load(x + i), iv)));
    for (; i < dim; ++i) y[i] = w[i] * (x[i] * inv);
  }
}

void k_rmsnorm(float* out, const float* in, const float* w, int64_t rows, int64_t dim, float eps) {
  k_rmsnorm_rstd(out, nullptr, in, w, rows, dim, eps);
}

// y = w x r with r = rstd: dx = r (w dy) - r^3 / dim * x * sum(w dy x). The row's sum is taken before
// any store, so dx may alias dy.
void k_rmsnorm_backward(float* dx, const float* dy, const float* x, const float* w, const float* rstd, int64_t rows,
                        int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    float* dxr = dx + r * dim;
    const float rs = rstd[r];
    int64_t i = 0;
    V::R acc = V::zero();
    for (; i + V::W <= dim; i += V::W)
      acc = V::fmadd(V::mul(V::load(w + i), V::load(dyr + i)), V::load(xr + i), acc);
    float dot = V::hsum(acc);
    for (; i < dim; ++i) dot = std::fma(w[i] * dyr[i], xr[i], dot);
    const float coef = dot * rs * rs * rs / static_cast<float>(dim);
    const V::R rv = V::set1(rs), cv = V::set1(coef);
    for (i = 0; i + V::W <= dim; i += V::W)
      V::store(dxr + i, V::sub(V::mul(rv, V::mul(V::load(w + i), V::load(dyr + i))), V::mul(cv, V::load(xr + i))));
    for (; i < dim; ++i) dxr[i] = rs * (w[i] * dyr[i]) - coef * xr[i];
  }
}

// silu(g) u = g / (1 + exp(-g)) u, one vector: k_swiglu and the fused GEMM's epilogue share it, so
// they give the same bits.
inline V::R silu_mul(V::R g, V::R u) {
  const V::R s = V::div(g, V::add(V::set1(1.0f), V::exp(V::sub(V::zero(), g))));
  return V::mul(s, u);
}

// out = silu(gate) * up
void k_swiglu(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(out + i, silu_mul(V::load(gate + i), V::load(up + i)));
  for (; i < n; ++i) {
    float g = gate[i];
    out[i] = g / (1.0f + S::exp(-g)) * up[i];
  }
}

// act = silu(g) u, sigma = 1 / (1 + exp(-g)): du = da silu(g);  dg = da u sigma (1 + g (1 - sigma))
void k_swiglu_backward(float* dgate, float* dup, const float* dact, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  const V::R one = V::set1(1.0f), zero = V::zero();
  for (; i + V::W <= n; i += V::W) {
    const V::R g = V::load(gate + i), u = V::load(up + i), da = V::load(dact + i);
    const V::R sg = V::div(one, V::add(one, V::exp(V::sub(zero, g))));
    V::store(dup + i, V::mul(da, V::mul(g, sg)));
    V::store(dgate + i, V::mul(V::mul(da, V::mul(u, sg)), V::fmadd(g, V::sub(one, sg), one)));
  }
  for (; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + S::exp(-g));
    dup[i] = dact[i] * (g * sg);
    dgate[i] = dact[i] * (up[i] * sg) * std::fma(g, 1.0f - sg, 1.0f);
  }
}

// In-place softmax over x[0..n); returns nothing. Uses max subtraction like torch.
void k_softmax(float* x, int64_t n, float scale) {
  if (n <= 0) return;
  // Three passes, tails in masked vectors: x *= scale with the running max; exp(x - max) with the sum;
  // the division. Masked-off lanes load -inf, whose exp is 0.
  const int64_t full = n / V::W * V::W, rest = n - full;
  const V::R sc = V::set1(scale);
  V::R mv = V::set1(-INFINITY);
  for (int64_t i = 0; i < full; i += V::W) {
    const V::R v = V::mul(V::load(x + i), sc);
    V::store(x + i, v);
    mv = V::max(mv, v);
  }
  if (rest) {
    const V::R v = V::mul(V::load_n(x + full, rest, -INFINITY), sc);
    V::store_n(x + full, v, rest);
    mv = V::max(mv, v);
  }
  const V::R mb = V::set1(V::hmax(mv));
  V::R sv = V::zero();
  for (int64_t i = 0; i < full; i += V::W) {
    const V::R e = V::exp(V::sub(V::load(x + i), mb));
    V::store(x + i, e);
    sv = V::add(sv, e);
  }
  if (rest) {
    const V::R e = V::exp(V::sub(V::load_n(x + full, rest, -INFINITY), mb));
    V::store_n(x + full, e, rest);
    sv = V::add(sv, e);
  }
  const V::R iv = V::set1(1.0f / V::hsum(sv));
  for (int64_t i = 0; i < full; i += V::W) V::store(x + i, V::mul(V::load(x + i), iv));
  if (rest) V::store_n(x + full, V::mul(V::load_n(x + full, rest, 0.0f), iv), rest);
}

// Packed-panel GEMM (tensor/packed.h): c (m, n) (+)= sum over segments of a_s (m, k_s) b_s (k_s, 32), b_s
// one 32-column panel (row kk at b_s + 32 kk), n <= 32 columns kept. Every output element is one FMA
// chain over the segments' k in order, from zero, then + bias, then + c when accumulating: the tile
// shape and the ISA never change a result, so one row (decode) and many (prefill) agree bit for bit.
// kPanelRowsPerTile rows share each panel load; their accumulators stay in registers.
#if defined(TL_ISA_AVX512)
constexpr int kPanelRowsPerTile = 12;  // 24 zmm accumulators + 2 for the panel row
#elif defined(TL_ISA_AVX2)
constexpr int kPanelRowsPerTile = 6;  // half panels (half_tile below): 12 ymm accumulators + 2 for the panel row
#else
constexpr int kPanelRowsPerTile = 1;
#endif

// Stores one row of a panel's results, n <= 32 of them, from t (the accumulators spilled): + bias, + c.
inline void store_partial(float* c, const float* t, int64_t n, const float* bias, bool accumulate) {
  for (int64_t j = 0; j < n; ++j) {
    float r = t[j];
    if (bias) r = r + bias[j];
    c[j] = accumulate ? c[j] + r : r;
  }
}

// Stores one row of NV accumulators (NV * V::W columns, n of them kept): + bias, + c.
template <int NV>
inline void store_row(float* c, const V::R* acc, int64_t n, const float* bias, bool accumulate) {
  if (n == NV * V::W) {
    for (int v = 0; v < NV; ++v) {
      V::R r = acc[v];
      if (bias) r = V::add(r, V::load(bias + v * V::W));
      if (accumulate) r = V::add(V::load(c + v * V::W), r);
      V::store(c + v * V::W, r);
    }
    return;
  }
  float t[NV * V::W];
  for (int v = 0; v < NV; ++v) V::store(t + v * V::W, acc[v]);
  store_partial(c, t, n, bias, accumulate);
}

template <int MR>
void panel_tile(float* c, int64_t ldc, const tl::PanelSegment* segs, int nseg, int64_t n, const float* bias,
                bool accumulate) {
  constexpr int NV = 32 / V::W;
  V::R acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 32
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a;
    const float* b = segs[s].b;
    const int64_t lda = segs[s].lda, kn = segs[s].k, ldb = segs[s].ldb;
    for (int64_t kk = 0; kk < kn; ++kk) {
      V::R bv[NV];
#pragma GCC unroll 32
      for (int v = 0; v < NV; ++v) bv[v] = V::load(b + kk * ldb + v * V::W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const V::R av = V::set1(a[i * lda + kk]);
#pragma GCC unroll 32
        for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(av, bv[v], acc[i][v]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) store_row<NV>(c + i * ldc, acc[i], n, bias, accumulate);
}

#if defined(TL_ISA_AVX2)
// AVX2 has 16 ymm registers, too few for a tile of whole panels that is more than 2 rows high: that
// tile (8 accumulators, per k 4 panel loads and 2 broadcasts) read its 64 KB panel from L2 again every 2
// rows and ran at 0.71-0.86x OpenBLAS's Haswell sgemm on the bench model's shapes. Half panels instead:
// 6 rows by 16 columns (12 accumulators; per k 2 loads and 6 broadcasts, OpenBLAS's own Haswell shape).
// Each element is panel_tile's chain, so the bits agree.
template <int MR>
void half_tile(float* c, int64_t ldc, const tl::PanelSegment* segs, int nseg, int64_t col0, int64_t n,
               const float* bias, bool accumulate) {
  V::R acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V::zero();
  for (int s = 0; s < nseg; ++s) {
    // Rows i and i + 3 of a from two pointers and one stride (scaled addressing): six row pointers
    // and the loop state do not fit the 16 general registers next to the others.
    const float* p = segs[s].a;
    const float* q = MR > 3 ? segs[s].a + 3 * segs[s].lda : p;  // (no pointer past a's rows)
    const float* b = segs[s].b + col0;
    const int64_t lda = segs[s].lda, ldb = segs[s].ldb;
    const float* const end = p + segs[s].k;
    for (; p < end; ++p, ++q, b += ldb) {
      const V::R b0 = V::load(b), b1 = V::load(b + V::W);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const V::R av = V::set1(i < 3 ? p[i * lda] : q[(i - 3) * lda]);
        acc[i][0] = V::fmadd(av, b0, acc[i][0]);
        acc[i][1] = V::fmadd(av, b1, acc[i][1]);
      }
    }
  }
  const float* bh = bias ? bias + col0 : nullptr;
  for (int i = 0; i < MR; ++i) store_row<2>(c + i * ldc + col0, acc[i], n, bh, accumulate);
}

// Rows [0, m) of one panel (n <= 32 of its columns kept), kPanelRowsPerTile at a time, both halves of
// each row tile while its rows of a are in L1.
void half_rows(float* c, int64_t ldc, const tl::PanelSegment* segs, int nseg, int64_t m, int64_t n, const float* bias,
               bool accumulate) {
  constexpr int MR = kPanelRowsPerTile;
  tl::PanelSegment moved[4];
  for (int64_t r = 0; r < m; r += MR) {
    for (int s = 0; s < nseg; ++s) moved[s] = segs[s], moved[s].a = segs[s].a + r * segs[s].lda;
    float* cr = c + r * ldc;
    for (int64_t h = 0; h < n; h += 16) {
      const int64_t cols = std::min<int64_t>(16, n - h);
      switch (std::min<int64_t>(MR, m - r)) {
        case 1: half_tile<1>(cr, ldc, moved, nseg, h, cols, bias, accumulate); break;
        case 2: half_tile<2>(cr, ldc, moved, nseg, h, cols, bias, accumulate); break;
        case 3: half_tile<3>(cr, ldc, moved, nseg, h, cols, bias, accumulate); break;
        case 4: half_tile<4>(cr, ldc, moved, nseg, h, cols, bias, accumulate); break;
        case 5: half_tile<5>(cr, ldc, moved, nseg, h, cols, bias, accumulate); break;
        default: half_tile<MR>(cr, ldc, moved, nseg, h, cols, bias, accumulate); break;
      }
    }
  }
}
#endif

#if !defined(TL_ISA_AVX2)  // AVX2 multiplies half panels (half_tile) instead
#if defined(TL_ISA_AVX512)
// Two adjacent full panels at once, kPairRows rows by 64 columns: per k, 4 panel loads and 6 broadcasts
// feed 24 FMAs where the 12 x 32 tile needs 2 and 12 (and reloads a row pointer and the loop bound from
// the stack: too few registers for 12 row pointers). Measured 5-10% faster on the bench model's shapes,
// single-threaded. Each element is panel_tile's chain, so the bits agree.
constexpr bool kPairTiles = true;
constexpr int kPairRows = 6;
#else
constexpr bool kPairTiles = false;  // AVX2 has 16 registers: a pair tile of even one row would spill
constexpr int kPairRows = 1;
#endif

template <int MR>
void pair_tile(float* c, int64_t ldc, const tl::PanelSegment* segs, int nseg, const float* bias, bool accumulate) {
  constexpr int NV = 32 / V::W;
  V::R acc[MR][2 * NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 64
    for (int v = 0; v < 2 * NV; ++v) acc[i][v] = V::zero();
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a;
    const float* b0 = segs[s].b;
    const float* b1 = segs[s].b + segs[s].panel_stride;
    const int64_t lda = segs[s].lda, kn = segs[s].k, ldb = segs[s].ldb;
    for (int64_t kk = 0; kk < kn; ++kk) {
      V::R bv[2 * NV];
#pragma GCC unroll 32
      for (int v = 0; v < NV; ++v) {
        bv[v] = V::load(b0 + kk * ldb + v * V::W);
        bv[NV + v] = V::load(b1 + kk * ldb + v * V::W);
      }
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const V::R av = V::set1(a[i * lda + kk]);
#pragma GCC unroll 64
        for (int v = 0; v < 2 * NV; ++v) acc[i][v] = V::fmadd(av, bv[v], acc[i][v]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) store_row<2 * NV>(c + i * ldc, acc[i], 2 * NV * V::W, bias, accumulate);
}

// Rows [0, m) of a pair of full panels: whole tiles, then the last few rows in one tile.
void pair_rows(float* c, int64_t ldc, const tl::PanelSegment* segs, int nseg, int64_t m, const float* bias,
               bool accumulate) {
  constexpr int MR = kPairRows;
  tl::PanelSegment moved[4];
  for (int64_t r = 0; r < m; r += MR) {
    for (int s = 0; s < nseg; ++s) moved[s] = segs[s], moved[s].a = segs[s].a + r * segs[s].lda;
    float* cr = c + r * ldc;
    switch (std::min<int64_t>(MR, m - r)) {
      case 1: pair_tile<1>(cr, ldc, moved, nseg, bias, accumulate); break;
      case 2: pair_tile<std::min(2, MR)>(cr, ldc, moved, nseg, bias, accumulate); break;
      case 3: pair_tile<std::min(3, MR)>(cr, ldc, moved, nseg, bias, accumulate); break;
      case 4: pair_tile<std::min(4, MR)>(cr, ldc, moved, nseg, bias, accumulate); break;
      case 5: pair_tile<std::min(5, MR)>(cr, ldc, moved, nseg, bias, accumulate); break;
      default: pair_tile<MR>(cr, ldc, moved, nseg, bias, accumulate); break;
    }
  }
}
#endif

// One row (decode) against NP panels at once: a single panel gives only 32 / V::W FMA chains, too few to
// hide the FMA latency, so NP panels are interleaved; each element's chain is the same as in panel_tile.
template <int NP>
void panel_row(float* c, const tl::PanelSegment* segs, int nseg, int64_t n, const float* bias, bool accumulate) {
  constexpr int NV = 32 / V::W;
  V::R acc[NP][NV];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 32
    for (int v = 0; v < NV; ++v) acc[p][v] = V::zero();
  for (int s = 0; s < nseg; ++s) {
    const float* a = segs[s].a;
    const float* b = segs[s].b;
    const int64_t kn = segs[s].k, ps = segs[s].panel_stride, ldb = segs[s].ldb;
    for (int64_t kk = 0; kk < kn; ++kk) {
      const V::R av = V::set1(a[kk]);
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p)
#pragma GCC unroll 32
        for (int v = 0; v < NV; ++v) acc[p][v] = V::fmadd(av, V::load(b + p * ps + kk * ldb + v * V::W), acc[p][v]);
    }
  }
  float t[NP * 32];
  for (int p = 0; p < NP; ++p)
    for (int v = 0; v < NV; ++v) V::store(t + p * 32 + v * V::W, acc[p][v]);
  store_partial(c, t, n, bias, accumulate);
}

void k_panel_gemm(float* c, int64_t ldc, const tl::PanelSegment* segs, int nseg, int64_t m, int64_t n,
                  const float* bias, bool accumulate) {
  tl::PanelSegment moved[4];
  const int64_t panels = (n + 31) / 32;
  if (m == 1) {
    for (int64_t p = 0; p < panels; p += 4) {
      for (int s = 0; s < nseg; ++s) moved[s] = segs[s], moved[s].b = segs[s].b + p * segs[s].panel_stride;
      const int64_t cols = std::min<int64_t>(128, n - p * 32);
      const float* bp = bias ? bias + p * 32 : nullptr;
      if (cols > 96) panel_row<4>(c + p * 32, moved, nseg, cols, bp, accumulate);
      else if (cols > 64) panel_row<3>(c + p * 32, moved, nseg, cols, bp, accumulate);
      else if (cols > 32) panel_row<2>(c + p * 32, moved, nseg, cols, bp, accumulate);
      else panel_row<1>(c + p * 32, moved, nseg, cols, bp, accumulate);
    }
    return;
  }
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t cols = std::min<int64_t>(32, n - p * 32);
    const float* bp = bias ? bias + p * 32 : nullptr;
#if defined(TL_ISA_AVX2)
    for (int s = 0; s < nseg; ++s) moved[s] = segs[s], moved[s].b = segs[s].b + p * segs[s].panel_stride;
    half_rows(c + p * 32, ldc, moved, nseg, m, cols, bp, accumulate);
#else
    constexpr int MR = kPanelRowsPerTile;
    if (kPairTiles && n - p * 32 >= 64) {
      for (int s = 0; s < nseg; ++s) moved[s] = segs[s], moved[s].b = segs[s].b + p * segs[s].panel_stride;
      pair_rows(c + p * 32, ldc, moved, nseg, m, bp, accumulate);
      ++p;
      continue;
    }
    for (int64_t r = 0; r < m; r += MR) {
      for (int s = 0; s < nseg; ++s)
        moved[s] = {segs[s].a + r * segs[s].lda, segs[s].lda, segs[s].b + p * segs[s].panel_stride, segs[s].k,
                    segs[s].panel_stride, segs[s].ldb};
      const int64_t rows = std::min<int64_t>(MR, m - r);
      float* cr = c + r * ldc + p * 32;
      if (rows == MR) {
        panel_tile<MR>(cr, ldc, moved, nseg, cols, bp, accumulate);
        continue;
      }
      // The last few rows, one template per count (MR is at most 12).
      switch (rows) {
        case 1: panel_tile<1>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 2: panel_tile<std::min(2, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 3: panel_tile<std::min(3, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 4: panel_tile<std::min(4, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 5: panel_tile<std::min(5, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 6: panel_tile<std::min(6, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 7: panel_tile<std::min(7, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 8: panel_tile<std::min(8, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 9: panel_tile<std::min(9, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        case 10: panel_tile<std::min(10, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
        default: panel_tile<std::min(11, MR)>(cr, ldc, moved, nseg, cols, bp, accumulate); break;
      }
    }
#endif
  }
}

// The gate and up projections of an MLP and its SwiGLU in one pass (tensor/packed.h,
// packed_gemm_swiglu): c (m, 32) = silu(a Bg + bias_g) (a Bu + bias_u) for one 32-column gate panel Bg
// and the up panel Bu of the same features. A pair tile (the up panel as its second panel) sums a few
// rows of gate and up into an L1 scratch, and the SwiGLU of k_swiglu is applied from there: each gate and
// up value is panel_tile's FMA chain (from zero, then + bias) and the product is k_swiglu's, so the result
// is bit-identical to the two-step path, and the (m, 2 I) gate/up matrix is never written.
#if defined(TL_ISA_AVX2)
constexpr int kSwigluRows = kPanelRowsPerTile;
#else
constexpr int kSwigluRows = kPairRows;
#endif

void k_panel_gemm_swiglu(float* c, int64_t ldc, const float* a, int64_t lda, int64_t k, const float* bg,
                         const float* bu, int64_t m, const float* bias_g, const float* bias_u) {
  constexpr int MR = kSwigluRows, NV = 32 / V::W;
  alignas(64) float sums[MR * 64];
  for (int64_t r = 0; r < m; r += MR) {
    const tl::PanelSegment seg{a + r * lda, lda, bg, k, bu - bg, 32};
    const int64_t rows = std::min<int64_t>(MR, m - r);
#if defined(TL_ISA_AVX2)
    // The gate panel, then the up panel, as half tiles (a pair tile does not fit AVX2's registers).
    const tl::PanelSegment up{a + r * lda, lda, bu, k, 0, 32};
    half_rows(sums, 64, &seg, 1, rows, 32, nullptr, false);
    half_rows(sums + 32, 64, &up, 1, rows, 32, nullptr, false);
#else
    pair_rows(sums, 64, &seg, 1, rows, nullptr, false);
#endif
    for (int64_t i = 0; i < rows; ++i)
      for (int v = 0; v < NV; ++v) {
        V::R g = V::load(sums + i * 64 + v * V::W), u = V::load(sums + i * 64 + 32 + v * V::W);
        if (bias_g) g = V::add(g, V::load(bias_g + v * V::W));
        if (bias_u) u = V::add(u, V::load(bias_u + v * V::W));
        V::store(c + (r + i) * ldc + v * V::W, silu_mul(g, u));
      }
  }
}

#if defined(TL_ISA_AVX512)
// Square blocks of kTransposeBlock transposed in registers: pairs of floats, then pairs of pairs within
// each 128-bit lane, then lanes; k_transpose32 tiles its 32 x 32 block with them.
constexpr int kTransposeBlock = 16;
inline void transpose_block(float* dst, int64_t ldd, const float* src, int64_t lds) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4i + c]: in lane L, column 4L + c of rows 4i .. 4i + 3.
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 x0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), x1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
    const __m512 y0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    const __m512 y1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    _mm512_storeu_ps(dst + c * ldd, _mm512_shuffle_f32x4(x0, y0, 0x88));
    _mm512_storeu_ps(dst + (c + 4) * ldd, _mm512_shuffle_f32x4(x1, y1, 0x88));
    _mm512_storeu_ps(dst + (c + 8) * ldd, _mm512_shuffle_f32x4(x0, y0, 0xdd));
    _mm512_storeu_ps(dst + (c + 12) * ldd, _mm512_shuffle_f32x4(x1, y1, 0xdd));
  }
}
#elif defined(TL_ISA_AVX2)
constexpr int kTransposeBlock = 8;
inline void transpose_block(float* dst, int64_t ldd, const float* src, int64_t lds) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4h + c]: in lane L, column 4L + c of rows 4h .. 4h + 3.
  for (int h = 0; h < 2; ++h) {
    r[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    r[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
    r[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    r[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
  }
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
    _mm256_storeu_ps(dst + (c + 4) * ldd, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
  }
}
#else
constexpr int kTransposeBlock = 32;
inline void transpose_block(float* dst, int64_t ldd, const float* src, int64_t lds) {
  for (int j = 0; j < 32; ++j)
    for (int i = 0; i < 32; ++i) dst[j * ldd + i] = src[i * lds + j];
}
#endif

void k_transpose32(float* dst, int64_t ldd, const float* src, int64_t lds) {
  constexpr int B = kTransposeBlock;
  for (int bi = 0; bi < 32; bi += B)
    for (int bj = 0; bj < 32; bj += B) transpose_block(dst + bj * ldd + bi, ldd, src + bi * lds + bj, lds);
}

// LoRA's two backward products that read dy (KernelTable::lora_dy) in one pass over it. RB rows of dy
// at a time, r split into column chunks of up to NV vectors (the chunks are independent: column c of
// dxa needs only column c of b, column c of db only column c of xa). Each dy element is broadcast once
// and feeds both products; the RB rows' dxa chunks stay in registers over a block of dy's columns, the
// block's rows of db (~16 KB) stay in L1 while every row tile passes over them. Partial vectors are
// masked, except db's when its rows are padded: a masked store followed by a load of the same line
// (the next row of db, for r < one vector) cannot be forwarded, and stalled r = 8 to a sixth of r = 16.
#if defined(TL_ISA_AVX512)
constexpr int kLoraDyVectors = 4;  // r chunks of up to 64 floats
constexpr int lora_dy_rows(int nv) { return nv == 1 ? 8 : nv == 2 ? 4 : 3; }
#elif defined(TL_ISA_AVX2)
constexpr int kLoraDyVectors = 2;
constexpr int lora_dy_rows(int nv) { return nv == 1 ? 4 : 2; }
#else
constexpr int kLoraDyVectors = 4;
constexpr int lora_dy_rows(int) { return 2; }
#endif

struct LoraDyChunk {
  int64_t last;   // lanes of the chunk's last vector
  bool db_full;   // db's rows are padded past the chunk: its last vector is loaded and stored whole
  bool first, final;  // the column block is dy's first (dxa starts at 0) / last (dxa is scaled and stored)
};

// Rows [0, RB) of the tile, dy columns [j0, j1). Between column blocks dxa holds the unscaled sums.
template <int NV, int RB>
void lora_dy_tile(float* dxa, int64_t ldxa, float* db, int64_t lddb, const float* dy, int64_t lddy, const float* b,
                  int64_t ldb, const float* xa, int64_t ldx, int64_t j0, int64_t j1, const LoraDyChunk& ch, float s) {
  const int64_t last = ch.last;
  V::R x[RB][NV], acc[RB][NV];
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) {
      const bool full = v + 1 < NV;
      x[i][v] = full ? V::load(xa + i * ldx + v * V::W) : V::load_n(xa + i * ldx + v * V::W, last, 0.0f);
      const float* a = dxa + i * ldxa + v * V::W;
      acc[i][v] = ch.first ? V::zero() : full ? V::load(a) : V::load_n(a, last, 0.0f);
    }
  for (int64_t j = j0; j < j1; ++j) {
    V::R d[RB];
    for (int i = 0; i < RB; ++i) d[i] = V::set1(dy[i * lddy + j]);
    for (int v = 0; v < NV; ++v) {
      const float* bp = b + j * ldb + v * V::W;
      float* dp = db + j * lddb + v * V::W;
      const bool full = v + 1 < NV, db_whole = full || ch.db_full;
      const V::R bj = full ? V::load(bp) : V::load_n(bp, last, 0.0f);
      V::R p = db_whole ? V::load(dp) : V::load_n(dp, last, 0.0f);
      for (int i = 0; i < RB; ++i) {
        acc[i][v] = V::fmadd(d[i], bj, acc[i][v]);
        p = V::fmadd(d[i], x[i][v], p);
      }
      if (db_whole) V::store(dp, p);
      else V::store_n(dp, p, last);
    }
  }
  const V::R sv = V::set1(s);
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) {
      float* out = dxa + i * ldxa + v * V::W;
      const V::R val = ch.final ? V::mul(acc[i][v], sv) : acc[i][v];
      if (v + 1 < NV) V::store(out, val);
      else V::store_n(out, val, last);
    }
}

// All m rows for one column chunk of NV vectors.
template <int NV>
void lora_dy_chunk(float* dxa, int64_t ldxa, float* db, int64_t lddb, const float* dy, int64_t lddy, const float* b,
                   int64_t ldb, const float* xa, int64_t ldx, int64_t m, int64_t n, LoraDyChunk ch, float s) {
  constexpr int RB = lora_dy_rows(NV);
  constexpr int64_t kBlockCols = std::max<int64_t>(32, 4096 / (NV * V::W));
  for (int64_t j0 = 0; j0 < n; j0 += kBlockCols) {
    const int64_t j1 = std::min(n, j0 + kBlockCols);
    ch.first = j0 == 0;
    ch.final = j1 == n;
    int64_t t = 0;
    for (; t + RB <= m; t += RB)
      lora_dy_tile<NV, RB>(dxa + t * ldxa, ldxa, db, lddb, dy + t * lddy, lddy, b, ldb, xa + t * ldx, ldx, j0, j1, ch, s);
    for (; t < m; ++t)
      lora_dy_tile<NV, 1>(dxa + t * ldxa, ldxa, db, lddb, dy + t * lddy, lddy, b, ldb, xa + t * ldx, ldx, j0, j1, ch, s);
  }
}

void k_lora_dy(float* dxa, int64_t ldxa, float* db, int64_t lddb, const float* dy, int64_t lddy, const float* b,
               const float* xa, int64_t ldx, int64_t m, int64_t n, int64_t r, float s) {
  constexpr int64_t kChunk = int64_t{kLoraDyVectors} * V::W;
  if (n <= 0) return;
  for (int64_t c0 = 0; c0 < r; c0 += kChunk) {
    const int64_t w = std::min(kChunk, r - c0), nv = (w + V::W - 1) / V::W;
    const LoraDyChunk ch{w - (nv - 1) * V::W, lddb >= c0 + nv * V::W, true, true};
    float* dx = dxa + c0;
    float* dbc = db + c0;
    const float* bc = b + c0;
    const float* xc = xa + c0;
    switch (nv) {
      case 1: lora_dy_chunk<1>(dx, ldxa, dbc, lddb, dy, lddy, bc, r, xc, ldx, m, n, ch, s); break;
      case 2: lora_dy_chunk<2>(dx, ldxa, dbc, lddb, dy, lddy, bc, r, xc, ldx, m, n, ch, s); break;
      case 3: lora_dy_chunk<3>(dx, ldxa, dbc, lddb, dy, lddy, bc, r, xc, ldx, m, n, ch, s); break;
      default: lora_dy_chunk<kLoraDyVectors>(dx, ldxa, dbc, lddb, dy, lddy, bc, r, xc, ldx, m, n, ch, s); break;
    }
  }
}

const tl::KernelTable kTable = {
    k_dot,          k_axpy,       k_rmsnorm,    k_rmsnorm_rstd, k_rmsnorm_backward, k_swiglu, k_swiglu_backward,
    k_softmax,      k_panel_gemm, kPanelRowsPerTile, k_panel_gemm_swiglu, kSwigluRows,
    k_transpose32,  k_lora_dy,
};

}  // namespace
