// Weight matrices pre-packed for our own GEMM: W (n, k), the (out, in) layout of a Linear, stored as W^T
// cut into 32-column panels, each panel k rows of 32 contiguous floats (the last panel zero-padded).
//
// Why our own GEMM for x W^T: OpenBLAS re-packs the weight matrix on every call, zeroes C in a separate
// pass and synchronises its threads with sched_yield; in a prefill or a training step those cost
// about a quarter of the GEMM time. Frozen weights packed once remove the first, writing C straight from
// registers removes the second (with the bias and a residual add folded into the store), and splitting
// whole panels across our OpenMP team removes the third. Up to four terms share one sum (a LoRA term
// x_lora B^T can ride along with the base GEMM; the trainer computes its LoRA products apart, in
// kernels().lora_dy and OpenBLAS, and inference attention uses the row-major terms for K^T and V read
// in place).
//
// Every output element is one FMA chain over k in order (kernels.h, panel_gemm), whatever the number of
// rows or the ISA: decode (one row) and prefill (many) give bit-identical results.
//
// Usage:
//   tl::PackedMatrix w = tl::PackedMatrix::pack(wdata, out_features, in_features);
//   tl::packed_gemm(y, ldy, x, ldx, tokens, w, bias, /*accumulate=*/false);       // y = x W^T + bias
//   const tl::GemmTerm terms[] = {tl::GemmTerm::of_packed(x, ldx, w),                // y += x W^T + u B^T
//                                 tl::GemmTerm::of_packed(u, r, lora_b_packed)};
//   tl::gemm(y, ldy, tokens, w.rows(), terms, nullptr, /*accumulate=*/true);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

namespace tl {

// Sums longer than kLongSum run in chunks of kSumChunk floats of k, each chunk's chain added to y (a
// panel of a long sum would not stay in L2). Part of the contract: code that feeds the same kernel
// with panels of its own (matmul.h's NF4 and bf16 paths) chunks the same way, and gets the same bits.
inline constexpr int64_t kLongSum = 2048, kSumChunk = 2048;

// Panels per work item in the GEMM drivers (packed.cpp's, and matmul.h's converted ones): the AVX-512
// kernel runs a pair of full panels as one 6 x 64 register tile.
inline constexpr int64_t kPanelsPerItem = 2;

class PackedMatrix {
 public:
  static constexpr int64_t kPanel = 32;

  PackedMatrix() = default;
  // From a row-major (n, k) matrix, rows ldw floats apart (ldw = k when dense).
  static PackedMatrix pack(const float* w, int64_t n, int64_t k, int64_t ldw = 0);
  // Re-packs in place from a matrix of the same shape.
  void repack(const float* w, int64_t ldw = 0);
  // Writes the matrix back row-major (n, k) into w.
  void unpack(float* w) const;

  int64_t rows() const { return n_; }  // n: output features
  int64_t cols() const { return k_; }  // k: input features
  int64_t panels() const { return (n_ + kPanel - 1) / kPanel; }
  const float* panel(int64_t p) const { return data_.get() + p * k_ * kPanel; }
  bool empty() const { return !data_; }
  int64_t bytes() const { return panels() * k_ * kPanel * 4; }

  // Element (row r of W, column c), for tests.
  float at(int64_t r, int64_t c) const { return panel(r / kPanel)[c * kPanel + r % kPanel]; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  int64_t n_ = 0, k_ = 0;
};

// One term of gemm(): x (m, k) times either W^T for a packed W (n, k), or B (k, n) row-major (rows ldb
// apart) read in place: B's 32-column strips are the panels, so it should be short (a LoRA A, k = r);
// long ones thrash the cache, pack their transpose instead.
struct GemmTerm {
  const float* x = nullptr;
  int64_t ldx = 0;
  const PackedMatrix* packed = nullptr;
  const float* b = nullptr;
  int64_t k = 0, ldb = 0;

  static GemmTerm of_packed(const float* x, int64_t ldx, const PackedMatrix& w) { return {x, ldx, &w, nullptr, w.cols(), 0}; }
  static GemmTerm of_rowmajor(const float* x, int64_t ldx, const float* b, int64_t k, int64_t ldb) {
    return {x, ldx, nullptr, b, k, ldb};
  }
};

// y (m, n) = sum of the terms (packed ones must have rows() = n) + bias (n, may be null), added to y
// when accumulate. Row blocks and panels run in parallel on the thread pool; at most 4 terms.
void gemm(float* y, int64_t ldy, int64_t m, int64_t n, std::span<const GemmTerm> terms, const float* bias,
          bool accumulate);

// y (m, w.rows()) (+)= x W^T + bias.
inline void packed_gemm(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, const PackedMatrix& w,
                        const float* bias, bool accumulate) {
  const GemmTerm t = GemmTerm::of_packed(x, ldx, w);
  gemm(y, ldy, m, w.rows(), std::span<const GemmTerm>(&t, 1), bias, accumulate);
}

// The columns from col0 on of packed_gemm (col0 a multiple of 32): y (m, w.rows() - col0) (+)= x W[col0:]^T
// + bias[col0:], y pointing at column col0. The same bits as those columns of packed_gemm.
void packed_gemm_cols(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, const PackedMatrix& w,
                      int64_t col0, const float* bias, bool accumulate);

// An MLP's gate and up projections and SwiGLU in one pass: act (m, I) = silu(x Wg^T + bg) * (x Wu^T + bu)
// for w = [Wg; Wu] packed (2 I, k), bias = [bg; bu] (2 I) or null. Bit-identical to packed_gemm into an
// (m, 2 I) buffer followed by kernels().swiglu on each row, without writing that buffer. Needs
// swiglu_fusable(w): I a multiple of 32 (each gate panel has an up panel of the same features) and k at
// most kLongSum (the kernel keeps one FMA chain per value; longer sums are chunked by gemm()).
bool swiglu_fusable(const PackedMatrix& w);
void packed_gemm_swiglu(float* act, int64_t ldact, const float* x, int64_t ldx, int64_t m, const PackedMatrix& w,
                        const float* bias);

// The input-gradient GEMM dx (m, n) (+)= dy (m, k) B for a B (k, n) that is not stored as panels: the
// forward's weight W = B^T packed (no transposed copy is kept), or a quantised one. B's rows run in chunks
// of kGradChunk; each chunk is laid out as panels in a scratch by fill(panel, p, k0, kn) -- rows
// k0 .. k0 + kn of B's 32-column strip p as kn rows of 32, zero past n -- and summed by the packed kernel,
// every chunk's chain added to dx. Chunk by chunk, dy's columns stay in cache while the chunk's panels
// pass over them (1024 measured a little ahead of 512 and level with 2048 on the bench model's shapes).
// One chunking for every caller, so f32, bf16 and NF4 weights give the same bits.
inline constexpr int64_t kGradChunk = 1024;
using PanelFill = std::function<void(float* panel, int64_t p, int64_t k0, int64_t kn)>;
void gemm_filled(float* dx, int64_t lddx, const float* dy, int64_t lddy, int64_t m, int64_t n, int64_t k,
                 const PanelFill& fill, bool accumulate);

// dx (m, w.cols()) (+)= dy (m, w.rows()) W for W packed for the forward: its panels' 32 x 32 blocks,
// transposed, are the fill.
void packed_gemm_dyw(float* dx, int64_t lddx, const float* dy, int64_t lddy, int64_t m, const PackedMatrix& w,
                     bool accumulate);

}  // namespace tl
