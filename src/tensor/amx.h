// bf16 GEMMs on Intel AMX's tiles for a frozen weight matrix: mixed precision (`training.precision: bf16`), the
// way PyTorch's autocast and Hugging Face's `bf16: true` train LoRA. The weights and each GEMM's input
// are rounded to bf16 (round to nearest even, as PyTorch rounds; values below bf16's normal range become
// zero, as the tile unit reads such inputs anyway); products and sums are f32 (AMX's TDPBF16PS), and
// every output is f32. Without the tile unit the same tiles are multiplied with AVX512-BF16's VDPBF16PS,
// whose operands are laid out as a tile's rows are (one kernel function differs; the rest is shared):
// on 2 AMD Zen 4 cores that runs at 385-430 GFLOP/s on the bench model's forward shapes, 2.1-2.2x
// OpenBLAS's sgemm there, and at 0.9-1.0x PyTorch's oneDNN bf16 matmul on 2048^3 (bench/gemm_bench,
// bench/train_bench); the instruction's own peak there is ~230 GFLOP/s a core.
//
// Why: on a CPU with AMX-BF16 (Sapphire Rapids and later) one core's tile unit does about 3 TFLOP/s on
// bf16 with its operands in L1 (3.7 with no loads; measured here), some fifteen times its AVX-512 f32
// FMAs. The frozen base's GEMMs are about 60% of a LoRA step in f32 (tensor/packed.h); here they become
// a smaller part of it. In a training step they are bound by memory (an output that has left the
// caches halves a GEMM's speed), so most of what this file adds beyond the kernel saves passes over
// memory. amx_matmul serves attention's products the same way, AmxLowRank carries LoRA's products
// inside the frozen GEMM and amx_gemm_tn its weight gradients; LoRA's own matrices, the softmax, the
// norms and the optimizer stay f32.
//
// Layout: W (n, k) is held twice, once for each product, as 16 x 32 bf16 tiles in AMX's VNNI order (row
// i of a tile holds, for each of 16 output columns, two consecutive values of the sum): `fwd` for
// x W^T (sum over k) and `bwd` for dy W (sum over n). Two bf16 copies take the bytes of one f32 copy.
//
// Usage:
//   if (tl::bf16_tiles_available()) {
//     tl::AmxMatrix w = tl::AmxMatrix::pack(wdata, out_features, in_features);
//     tl::amx_gemm_xwt(y, ldy, x, ldx, tokens, w, bias, /*accumulate=*/false);   // y = x W^T + bias
//     tl::amx_gemm_dyw(dx, lddx, dy, lddy, tokens, w, /*accumulate=*/true);      // dx += dy W
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace tl {

// True when this CPU has AVX512-BF16 and TUNELOOP_ISA does not hold the engine below avx512; asked once.
// The tile products then run on the AMX tile unit where the CPU has AMX-BF16 and Linux grants this
// process the tile state (arch_prctl(ARCH_REQ_XCOMP_PERM)), otherwise on AVX512-BF16's VDPBF16PS over the
// same tiles (AMD Zen 4 and later, Intel Cooper Lake): bf16_tiles_unit() says which ("AMX" or
// "AVX512-BF16"); TUNELOOP_BF16_UNIT=avx512-bf16 keeps an AMX CPU on the second, for tests and comparisons.
// bf16_tiles_unavailable_reason() says what is missing.
bool bf16_tiles_available();
std::string bf16_tiles_unavailable_reason();
const char* bf16_tiles_unit();

class AmxMatrix {
 public:
  AmxMatrix() = default;
  // From a row-major (n, k) f32 matrix, rows ldw floats apart (ldw = k when dense).
  static AmxMatrix pack(const float* w, int64_t n, int64_t k, int64_t ldw = 0);
  int64_t rows() const { return n_; }
  int64_t cols() const { return k_; }
  bool empty() const { return !fwd_; }
  int64_t bytes() const { return (fwd_elems_ + bwd_elems_) * 2; }
  // Element (r, c) of W as the bf16 bits both copies hold, for tests.
  uint16_t at(int64_t r, int64_t c) const;
  uint16_t at_bwd(int64_t r, int64_t c) const;

  // Tiles of the forward copy: for each 16-row block of W (nb), its k / 32 tiles in order.
  const uint16_t* fwd() const { return fwd_.get(); }
  // Tiles of the backward copy: for each 16-column block of W (kb), its n / 32 tiles in order.
  const uint16_t* bwd() const { return bwd_.get(); }
  int64_t k_pad() const { return (k_ + 31) / 32 * 32; }  // the forward's sum, zero-padded
  int64_t n_pad() const { return (n_ + 31) / 32 * 32; }  // the backward's sum, zero-padded

 private:
  struct Free {
    void operator()(uint16_t* p) const;
  };
  std::unique_ptr<uint16_t[], Free> fwd_, bwd_;
  int64_t n_ = 0, k_ = 0, fwd_elems_ = 0, bwd_elems_ = 0;
};

// A low-rank product added into a GEMM's outputs after its main sum: bf16(scale u) bf16(V), for u (m, r)
// rows ldu apart and V given either as (n, r), one row per output (`per_output`: LoRA's B for x W^T), or
// as (r, n) (LoRA's A for dy W), rows ldv apart. It is LoRA's second product folded into the frozen
// base's GEMM, y = x W^T + s (x A^T) B^T and dx = dy W + (s dy B) A, where a product of its own would
// read and write all of y or dx again for an r-wide sum; both operands are rounded to bf16, as autocast
// rounds LoRA's own linears. The term's tiles are made per call (r is small).
//
// With `a` set, u is not given but computed from the GEMM's own bf16 tiles of its input x (or dy): u =
// bf16(x) bf16(a)^T for a (r, k) when per_output (LoRA's x A^T), u = bf16(dy) bf16(a) for a (k, r)
// otherwise (LoRA's dy B), rows lda apart; written unscaled to xa (m, r) rows ldu apart for the caller
// (LoRA's gradients read it), with no second pass over the input.
struct AmxLowRank {
  const float* u = nullptr;
  int64_t ldu = 0;
  const float* v = nullptr;
  int64_t ldv = 0;
  int64_t r = 0;
  bool per_output = true;
  float scale = 1.0f;
  const float* a = nullptr;
  int64_t lda = 0;
  float* xa = nullptr;
};

// y (m, w.rows()) (+)= bf16(x) bf16(W)^T (+ low_rank) + bias (f32, may be null); x (m, w.cols()) rows
// ldx apart. Needs bf16_tiles_available().
void amx_gemm_xwt(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, const AmxMatrix& w,
                  const float* bias, bool accumulate, const AmxLowRank* low_rank = nullptr);

// dx (m, w.cols()) (+)= bf16(dy) bf16(W) (+ low_rank); dy (m, w.rows()) rows lddy apart. Needs
// bf16_tiles_available().
void amx_gemm_dyw(float* dx, int64_t lddx, const float* dy, int64_t lddy, int64_t m, const AmxMatrix& w,
                  bool accumulate, const AmxLowRank* low_rank = nullptr);

// y (m, n) (+)= bf16(x) (m, k) bf16(B) + bias (may be null) for an f32 B given either way (see AmxB
// below), packed into tiles per call on the thread pool: QLoRA's NF4 blocks, dequantised to f32 just
// before. Each output's sum runs over k in 512-value chunks from 0, as amx_gemm_xwt's does, so a matrix
// split along n (x W^T) gives the bits of the whole; split along the sum at multiples of 512 (dy W,
// each later part with accumulate), too. Needs bf16_tiles_available().
void amx_gemm_b(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n, int64_t k, const float* b,
                int64_t ldb, bool b_transposed, const float* bias, bool accumulate,
                const AmxLowRank* low_rank = nullptr);
// The same for a B held as bf16 (QLoRA's frozen head), packed from it as it is (bf16 -> f32 is exact, so
// the bits of amx_gemm_b on the converted matrix).
void amx_gemm_b(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n, int64_t k,
                const uint16_t* b, int64_t ldb, bool b_transposed, const float* bias, bool accumulate,
                const AmxLowRank* low_rank = nullptr);

// c (m, n) (+)= bf16(alpha a)^T bf16(b) for a (k, m) and b (k, n), both f32 row-major (rows lda, ldb
// apart), on the thread pool: LoRA's weight gradients under training.precision: bf16, sums over the
// tokens (dA = s dxa^T x; dB^T = s xa^T dy), as autocast computes them from bf16 operands. m should be
// small (a rank): a is converted on the calling thread. Needs bf16_tiles_available().
void amx_gemm_tn(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float alpha, bool accumulate);

// How amx_matmul is given B: as B (k, n), rows ldb apart, or as its transpose (n, k), rows ldb apart.
enum class AmxB { kRowMajor, kTransposed };

// c (m, n) = alpha bf16(a) bf16(B) (+ c when accumulate; alpha must then be 1) for two f32 operands,
// both converted on the calling thread (no thread pool): products inside a parallel loop, such as
// attention's per-block ones under training.precision: bf16, as autocast runs them. a (m, k) rows lda
// apart, or given as its transpose (k, m) rows lda apart when a_transposed (attention's P^T dO and
// dS^T Q, read from P and dS as they are). Needs bf16_tiles_available().
void amx_matmul(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, AmxB layout, float alpha, bool accumulate, bool a_transposed = false);

}  // namespace tl
