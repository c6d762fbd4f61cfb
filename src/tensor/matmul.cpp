#include "tensor/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "tensor/blas.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"

namespace tl {

namespace {

// f32 elements per conversion block (4 MB): every block is a GEMM that packs the activations again, so
// blocks much smaller than this cost QLoRA throughput; much larger, memory.
constexpr int64_t kBlockFloats = int64_t{1} << 20;

// Writes rows [r0, r1) of w as f32 into out ((r1 - r0), cols), in parallel chunks.
void rows_to_f32(float* out, const WeightRef& w, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols;
  auto run = [&](int64_t b, int64_t e) {
    const int64_t begin = (r0 + b) * cols, count = (e - b) * cols;
    float* dst = out + b * cols;
    if (w.nf4) nf4_dequantize(dst, *w.nf4, begin, count);
    else convert_to_f32(dst, w.bf16 + begin, DType::kBF16, static_cast<size_t>(count));
  };
  parallel_rows(r1 - r0, cols, run, 4);
}

// One scratch block per thread that converts (the caller's; the conversion itself fans out).
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < static_cast<size_t>(n)) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

}  // namespace

int64_t matmul_block_rows(int64_t cols) {
  const int64_t rows = kBlockFloats / std::max<int64_t>(1, cols);
  return std::max<int64_t>(16, rows / 16 * 16);
}

void matmul_xwt(float* y, const float* x, const WeightRef& w, int64_t m, int64_t ldx, int64_t ldy, float alpha,
                float beta) {
  const int mm = static_cast<int>(m), k = static_cast<int>(w.cols);
  if (w.packed && alpha == 1.0f && (beta == 0.0f || beta == 1.0f)) {
    packed_gemm(y, ldy, x, ldx, m, *w.packed, nullptr, beta == 1.0f);
    return;
  }
  if (w.f32) {
    sgemm(false, true, mm, static_cast<int>(w.rows), k, alpha, x, static_cast<int>(ldx), w.f32, k, beta, y,
          static_cast<int>(ldy));
    return;
  }
  const int64_t nb = matmul_block_rows(w.cols);
  float* blk = scratch(nb * w.cols);
  for (int64_t r0 = 0; r0 < w.rows; r0 += nb) {
    const int64_t r1 = std::min(w.rows, r0 + nb);
    rows_to_f32(blk, w, r0, r1);
    sgemm(false, true, mm, static_cast<int>(r1 - r0), k, alpha, x, static_cast<int>(ldx), blk, k, beta, y + r0,
          static_cast<int>(ldy));
  }
}

void matmul_dyw(float* dx, const float* dy, const WeightRef& w, int64_t m, int64_t lddy, int64_t lddx, float alpha,
                float beta) {
  const int mm = static_cast<int>(m), k = static_cast<int>(w.rows);
  if (w.packed_t && alpha == 1.0f && (beta == 0.0f || beta == 1.0f)) {
    packed_gemm(dx, lddx, dy, lddy, m, *w.packed_t, nullptr, beta == 1.0f);
    return;
  }
  if (w.f32) {
    sgemm(false, false, mm, static_cast<int>(w.cols), k, alpha, dy, static_cast<int>(lddy), w.f32,
          static_cast<int>(w.cols), beta, dx, static_cast<int>(lddx));
    return;
  }
  // Blocks of columns, so every output element is still one GEMM's sum over all of W's rows.
  const int64_t cb = std::min(w.cols, std::max<int64_t>(64, kBlockFloats / std::max<int64_t>(1, w.rows) / 64 * 64));
  float* blk = scratch(w.rows * cb);
  for (int64_t c0 = 0; c0 < w.cols; c0 += cb) {
    const int64_t c1 = std::min(w.cols, c0 + cb), width = c1 - c0;
    auto run = [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float* dst = blk + r * width;
        if (w.nf4) nf4_dequantize(dst, *w.nf4, r * w.cols + c0, width);
        else convert_to_f32(dst, w.bf16 + r * w.cols + c0, DType::kBF16, static_cast<size_t>(width));
      }
    };
    parallel_rows(w.rows, width, run, 64);
    sgemm(false, false, mm, static_cast<int>(width), k, alpha, dy, static_cast<int>(lddy), blk,
          static_cast<int>(width), beta, dx + c0, static_cast<int>(lddx));
  }
}

void matvec(float* y, const WeightRef& w, const float* x, const float* bias) {
  const KernelTable& k = kernels();
  if (w.packed) {
    packed_gemm(y, w.rows, x, w.cols, 1, *w.packed, bias, false);
    return;
  }
  if (w.f32) {
    ThreadPool::global().parallel_for(w.rows, [&](int64_t b, int64_t e) { k.gemv_rows(y, w.f32, x, bias, b, e, w.cols); },
                                      64);
    return;
  }
  // Each thread converts its own rows in small blocks and multiplies them. Blocks are a multiple of 4
  // rows, gemv_rows' grouping, so every row is summed as in the f32 path over the same chunk.
  ThreadPool::global().parallel_for(w.rows, [&](int64_t b, int64_t e) {
    const int64_t nb = std::max<int64_t>(4, 16384 / std::max<int64_t>(1, w.cols) / 4 * 4);
    thread_local std::vector<float> blk;
    blk.resize(static_cast<size_t>(nb * w.cols));
    for (int64_t r0 = b; r0 < e; r0 += nb) {
      const int64_t r1 = std::min(e, r0 + nb), count = (r1 - r0) * w.cols;
      if (w.nf4) nf4_dequantize(blk.data(), *w.nf4, r0 * w.cols, count);
      else convert_to_f32(blk.data(), w.bf16 + r0 * w.cols, DType::kBF16, static_cast<size_t>(count));
      k.gemv_rows(y + r0, blk.data(), x, bias ? bias + r0 : nullptr, 0, r1 - r0, w.cols);
    }
  }, 64);
}

void gather_rows(float* out, const WeightRef& w, const int32_t* ids, int64_t n) {
  for (int64_t t = 0; t < n; ++t) {
    const int64_t row = ids[t];
    float* dst = out + t * w.cols;
    if (w.f32) std::memcpy(dst, w.f32 + row * w.cols, static_cast<size_t>(w.cols) * 4);
    else if (w.nf4) nf4_dequantize(dst, *w.nf4, row * w.cols, w.cols);
    else convert_to_f32(dst, w.bf16 + row * w.cols, DType::kBF16, static_cast<size_t>(w.cols));
  }
}

}  // namespace tl
