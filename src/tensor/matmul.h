// GEMMs against a weight matrix stored as f32, NF4 (QLoRA's frozen base) or bf16 (QLoRA's frozen
// embedding), for the forward (x W^T) and the input-gradient pass (dy W).
//
// Why: QLoRA's promise is that the frozen model never sits in memory at full precision. A quantised
// matrix is converted here one 32-wide panel at a time, straight before the packed kernel consumes it
// (tensor/packed.h), so a whole f32 layer never exists either. An f32 matrix without a packed copy
// (full fine-tuning's, whose values change every step) goes the same way, panels transposed out of W.
// Every f32 path (all but bf16 tiles) is the packed kernel's sum, chunked as packed.h chunks it: each
// output element has the same bits whatever the storage (given the same values), the rows, the ISA or
// the BLAS. OpenBLAS
// does not promise that: its Haswell kernels round an element differently by where it falls in the
// matrix, so a full-fine-tuned model scored through it (sgemm) and reloaded packed would disagree in
// the last bits.
//
// Usage:
//   tl::WeightRef w = tl::WeightRef::of_nf4(&q, rows, cols);        // or of_f32(p, rows, cols)
//   tl::matmul_xwt(y, x, w, tokens, /*ldx=*/cols, /*ldy=*/rows);     // y (T, rows) = x (T, cols) W^T
//   tl::matmul_dyw(dx, dy, w, tokens, /*lddy=*/rows, /*lddx=*/cols); // dx (T, cols) = dy (T, rows) W
#pragma once

#include <cstdint>

#include "tensor/amx.h"
#include "tensor/nf4.h"
#include "tensor/packed.h"

namespace tl {

// A (rows, cols) row-major weight matrix in one of the storage formats, optionally with a packed copy
// (tensor/packed.h) that the forward GEMMs and matvec prefer. Non-owning.
struct WeightRef {
  const float* f32 = nullptr;
  const Nf4Tensor* nf4 = nullptr;  // the matrix flattened row-major
  const uint16_t* bf16 = nullptr;
  int64_t rows = 0, cols = 0;
  const PackedMatrix* packed = nullptr;  // W packed: used by x W^T, matvec and dy W
  // W as bf16 tiles in AMX's layout (tensor/amx.h; AMX or AVX512-BF16 multiplies them): when set, x W^T, matvec and dy W are bf16 products with f32
  // sums (training.precision: bf16), whatever else is set.
  const AmxMatrix* amx = nullptr;
  // NF4 or bf16 storage under training.precision: bf16 (QLoRA with bf16 compute, as bitsandbytes'
  // compute_dtype): each block (NF4 dequantised to f32 first, bf16 as it is) is packed into tiles and
  // multiplied as bf16 tiles (amx_gemm_b) instead of by the f32 packed kernel.
  bool blocks_on_amx = false;

  static WeightRef of_f32(const float* p, int64_t rows, int64_t cols) { return {p, nullptr, nullptr, rows, cols}; }
  static WeightRef of_nf4(const Nf4Tensor* q, int64_t rows, int64_t cols) { return {nullptr, q, nullptr, rows, cols}; }
  static WeightRef of_bf16(const uint16_t* p, int64_t rows, int64_t cols) { return {nullptr, nullptr, p, rows, cols}; }
  bool empty() const { return !f32 && !nf4 && !bf16 && !packed && !amx; }
  WeightRef with_packed(const PackedMatrix* p) const {
    WeightRef r = *this;
    r.packed = p;
    return r;
  }
  WeightRef with_amx(const AmxMatrix* a) const {
    WeightRef r = *this;
    r.amx = a;
    if (a) r.rows = a->rows(), r.cols = a->cols();
    return r;
  }
};

// y (m, w.rows) (+)= x (m, w.cols) W^T; x rows ldx apart, y rows ldy apart. With a packed copy this is
// packed_gemm; with AMX tiles, amx_gemm_xwt; otherwise packed_gemm on panels converted on the fly.
void matmul_xwt(float* y, const float* x, const WeightRef& w, int64_t m, int64_t ldx, int64_t ldy,
                bool accumulate = false);

// True when w's GEMMs are bf16 tile products (its tiles, or its NF4 / bf16 blocks converted to tiles): the
// only ones that take a low-rank term (below).
inline bool on_amx(const WeightRef& w) { return w.amx || ((w.nf4 || w.bf16) && w.blocks_on_amx); }

// y (m, w.rows) (+)= x W^T + the low-rank term (tensor/amx.h: V per output, n = w.rows), for a w on_amx;
// the same sums as amx_gemm_xwt with that term on the whole matrix, however the blocks split it.
void matmul_xwt_low_rank(float* y, const float* x, const WeightRef& w, int64_t m, int64_t ldx, int64_t ldy,
                         const AmxLowRank& low_rank, bool accumulate = false);

// dx (m, w.cols) (+)= dy W + the low-rank term (V (r, w.cols)), for a w on_amx.
void matmul_dyw_low_rank(float* dx, const float* dy, const WeightRef& w, int64_t m, int64_t lddy, int64_t lddx,
                         const AmxLowRank& low_rank, bool accumulate = false);

// dx (m, w.cols) (+)= dy (m, w.rows) W; dy rows lddy apart, dx rows lddx apart: tensor/packed.h's
// chunked input-gradient GEMM (packed_gemm_dyw, gemm_filled), the same bits for every storage format.
// With AMX tiles: amx_gemm_dyw.
void matmul_dyw(float* dx, const float* dy, const WeightRef& w, int64_t m, int64_t lddy, int64_t lddx,
                bool accumulate = false);

// y[r] = W[r, :] . x + bias[r] for every row (one token: decode), bias may be null; rows in parallel.
// With a packed copy: packed_gemm's single-row path, bit-identical to matmul_xwt's rows.
void matvec(float* y, const WeightRef& w, const float* x, const float* bias);

// out (n, w.cols) = rows ids[0..n) of W as f32 (an embedding lookup).
void gather_rows(float* out, const WeightRef& w, const int32_t* ids, int64_t n);

// Rows per conversion block for a matrix `cols` wide (a multiple of 16, at least 16).
int64_t matmul_block_rows(int64_t cols);

}  // namespace tl
