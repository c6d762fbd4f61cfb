// CPU kernels of the engine: plain functions over explicit buffers (outputs first, then inputs, then
// sizes), vectorised for AVX-512 and AVX2+FMA with a scalar fallback, chosen once at run time from the
// CPU's features (override with TUNELOOP_ISA=avx512|avx2|scalar, for tests and comparisons).
//
// Shapes are in comments as (rows, cols); all buffers are row-major f32.
//
// Usage:
//   const tl::KernelTable& k = tl::kernels();
//   k.rmsnorm(out, x, w, T, C, eps);
#pragma once

#include <cstdint>
#include <string>

namespace tl {

enum class Isa { kScalar, kAvx2, kAvx512 };

// One term of a packed-panel GEMM: rows of `a` (lda apart) times the 32-column panels starting at `b`:
// each panel k rows of 32 floats, ldb apart (32 in a packed matrix, the row length when a row-major
// matrix is read in place); consecutive panels panel_stride floats apart. See tensor/packed.h.
struct PanelSegment {
  const float* a;
  int64_t lda;
  const float* b;
  int64_t k;
  int64_t panel_stride;
  int64_t ldb;
};

struct KernelTable {
  // sum_i a[i] * b[i]
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] += alpha * x[i]
  void (*axpy)(float* y, float alpha, const float* x, int64_t n);
  // out (rows, dim) = in * rsqrt(mean(in^2) + eps) * w (dim)      [HF LlamaRMSNorm, f32]
  void (*rmsnorm)(float* out, const float* in, const float* w, int64_t rows, int64_t dim, float eps);
  // rmsnorm that also stores each row's rsqrt(mean(in^2) + eps) in rstd (rows), for the backward
  void (*rmsnorm_rstd)(float* out, float* rstd, const float* in, const float* w, int64_t rows, int64_t dim,
                       float eps);
  // dx (rows, dim) = d rmsnorm(x) / dx applied to dy, given rstd from the forward; dx may alias dy.
  // (The weight gradient, needed only when training the norm, is the caller's.)
  void (*rmsnorm_backward)(float* dx, const float* dy, const float* x, const float* w, const float* rstd,
                           int64_t rows, int64_t dim);
  // out (n) = silu(gate) * up
  void (*swiglu)(float* out, const float* gate, const float* up, int64_t n);
  // Gradients of swiglu: dgate, dup (n) from dact (n) and the forward's gate, up
  void (*swiglu_backward)(float* dgate, float* dup, const float* dact, const float* gate, const float* up, int64_t n);
  // x (n) = softmax(x * scale), max-subtracted (scale > 0; attention folds its 1/sqrt(d) in here)
  void (*softmax)(float* x, int64_t n, float scale);
  // c (m, n) = sum over nseg (<= 4) segments of a_s (m, k_s) times the panels of b_s (k_s, n padded to 32s),
  // + bias (n) when non-null, + c when accumulate. Each element is one FMA chain over the segments in order, so the
  // result does not depend on m, the tiling or the ISA.
  void (*panel_gemm)(float* c, int64_t ldc, const PanelSegment* segs, int nseg, int64_t m, int64_t n,
                     const float* bias, bool accumulate);
  int panel_rows;  // rows per register tile in panel_gemm (work splits are best made in multiples)
  // c (m, 32) = silu(a Bg + bias_g) * (a Bu + bias_u): a (m, k) rows lda apart, Bg and Bu one 32-column
  // panel each (k rows of 32); biases (32) may be null. Bit-identical to panel_gemm of each panel, then
  // swiglu.
  void (*panel_gemm_swiglu)(float* c, int64_t ldc, const float* a, int64_t lda, int64_t k, const float* bg,
                            const float* bu, int64_t m, const float* bias_g, const float* bias_u);
  int swiglu_rows;  // rows per register tile in panel_gemm_swiglu
  // dst[j * ldd + i] = src[i * lds + j] for i, j < 32: one 32 x 32 block transposed (the input-gradient
  // GEMM reads W's column strips out of the forward's packing, lds = 32; the converted x W^T lays
  // converted rows out as panels).
  void (*transpose32)(float* dst, int64_t ldd, const float* src, int64_t lds);
  // The LoRA backward's two products that read dy, in one pass over dy (m, n; rows lddy apart) for a
  // branch of rank r: dxa (m, r; rows ldxa apart) = s dy b, and db (n, r; rows lddb apart) += dy^T xa,
  // with b (n, r) dense and xa (m, r; rows ldx apart). Each dxa element is one FMA chain over n in order,
  // each db element sums its m terms in row order. Pad db's rows to a multiple of 16 floats for ranks
  // that are not (the kernel then adds zeros to the padding instead of masking its stores).
  void (*lora_dy)(float* dxa, int64_t ldxa, float* db, int64_t lddb, const float* dy, int64_t lddy, const float* b,
                  const float* xa, int64_t ldx, int64_t m, int64_t n, int64_t r, float s);
};

// The table for the best ISA this CPU supports (or TUNELOOP_ISA).
const KernelTable& kernels();
// A specific table; falls back to scalar if the CPU lacks the ISA.
const KernelTable& kernels_for(Isa isa);
bool cpu_supports(Isa isa);
Isa active_isa();
const char* isa_name(Isa isa);

}  // namespace tl
