// The converting GEMMs of tensor/matmul.h (QLoRA's NF4 projections, its bf16 embedding, full
// fine-tuning's f32 matrices without a packed copy) against the packed GEMM on the whole converted
// matrix, with shapes that need ragged panels and chunked sums. Each output element is the same sum, so
// the results must be bit-identical.
#include "tensor/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/packed.h"
#include "random_data.h"

namespace tl {
namespace {

using test_data::randn;

struct Fixture {
  int64_t rows, cols;
  std::vector<float> w;      // the f32 matrix the quantised one stands for
  Nf4Tensor q;
  std::vector<uint16_t> b16;
  std::vector<float> deq, from_bf16;  // what the blocks must reproduce
};

Fixture make(int64_t rows, int64_t cols) {
  Fixture f{rows, cols, randn(static_cast<size_t>(rows * cols), 7), {}, {}, {}, {}};
  f.q = nf4_quantize(f.w.data(), rows * cols, true);
  f.deq.resize(f.w.size());
  nf4_dequantize(f.deq.data(), f.q, 0, rows * cols);
  for (float x : f.w) f.b16.push_back(f32_to_bf16(x));
  for (uint16_t h : f.b16) f.from_bf16.push_back(bf16_to_f32(h));
  return f;
}

// 4500 rows of 256: several panel groups for x W^T, a chunked sum (4500 > kLongSum) for dy W. The
// converted paths (NF4, bf16, and f32 without a packed copy, as full fine-tuning's weights are) are bit
// for bit the packed GEMMs on the converted matrix, accumulating or not.
TEST(Matmul, ConvertedGemmsArePackedGemmBitsOnTheConvertedMatrix) {
  const Fixture f = make(4500, 256);
  const int64_t m = 37;
  const auto x = randn(static_cast<size_t>(m * f.cols), 8), dy = randn(static_cast<size_t>(m * f.rows), 9);
  for (int kind = 0; kind < 3; ++kind) {
    const char* name = kind == 0 ? "nf4" : kind == 1 ? "bf16" : "f32";
    const WeightRef w = kind == 0   ? WeightRef::of_nf4(&f.q, f.rows, f.cols)
                        : kind == 1 ? WeightRef::of_bf16(f.b16.data(), f.rows, f.cols)
                                    : WeightRef::of_f32(f.w.data(), f.rows, f.cols);
    const std::vector<float>& full = kind == 0 ? f.deq : kind == 1 ? f.from_bf16 : f.w;
    const PackedMatrix packed = PackedMatrix::pack(full.data(), f.rows, f.cols);
    for (bool accumulate : {false, true}) {
      std::vector<float> y(static_cast<size_t>(m * f.rows), 1.0f), ref = y;
      matmul_xwt(y.data(), x.data(), w, m, f.cols, f.rows, accumulate);
      packed_gemm(ref.data(), f.rows, x.data(), f.cols, m, packed, nullptr, accumulate);
      EXPECT_EQ(y, ref) << name << " x W^T, accumulate " << accumulate;
      std::vector<float> dx(static_cast<size_t>(m * f.cols), 1.0f), dref = dx;
      matmul_dyw(dx.data(), dy.data(), w, m, f.rows, f.cols, accumulate);
      packed_gemm_dyw(dref.data(), f.cols, dy.data(), f.rows, m, packed, accumulate);
      EXPECT_EQ(dx, dref) << name << " dy W, accumulate " << accumulate;
    }
    // Against an independent sum too (f64), so the packed path itself is not all that is trusted.
    std::vector<float> y(static_cast<size_t>(m * f.rows));
    matmul_xwt(y.data(), x.data(), w, m, f.cols, f.rows);
    for (int64_t i = 0; i < m; i += 9)
      for (int64_t r = 0; r < f.rows; r += 97) {
        double sum = 0, mag = 0;
        for (int64_t c = 0; c < f.cols; ++c) {
          const double t = static_cast<double>(x[static_cast<size_t>(i * f.cols + c)]) * full[static_cast<size_t>(r * f.cols + c)];
          sum += t;
          mag += std::abs(t);
        }
        // f32 sum of 256 products: |error| <= 256 * 2^-24 * sum|terms|
        EXPECT_NEAR(y[static_cast<size_t>(i * f.rows + r)], sum, 256 * 0x1p-24 * mag) << name;
      }
    // One token (decode), against the packed f32 decode path on the converted matrix, and an embedding lookup.
    std::vector<float> bias = randn(static_cast<size_t>(f.rows), 10), v(static_cast<size_t>(f.rows)), vref(v.size());
    matvec(v.data(), w, x.data(), bias.data());
    matvec(vref.data(), WeightRef::of_f32(full.data(), f.rows, f.cols).with_packed(&packed), x.data(), bias.data());
    EXPECT_EQ(v, vref);
    const int32_t ids[] = {0, 4499, 640};
    std::vector<float> g(static_cast<size_t>(3 * f.cols));
    gather_rows(g.data(), w, ids, 3);
    for (int i = 0; i < 3; ++i)
      for (int64_t c = 0; c < f.cols; ++c)
        ASSERT_EQ(g[static_cast<size_t>(i * f.cols + c)], full[static_cast<size_t>(ids[i] * f.cols + c)]);
  }
}

// Ragged shapes for the converted x W^T: input widths that are not whole 32 x 32 blocks (the block
// transpose, then a scalar tail) and a last panel of a few rows, bit for bit the packed GEMM.
TEST(Matmul, ConvertedPanelsOfRaggedShapesArePackedGemmBits) {
  for (int64_t cols : {40, 100, 64}) {
    const Fixture f = make(70, cols);
    const int64_t m = 13;
    const auto x = randn(static_cast<size_t>(m * f.cols), 11);
    for (int kind = 0; kind < 3; ++kind) {
      const WeightRef w = kind == 0   ? WeightRef::of_nf4(&f.q, f.rows, f.cols)
                          : kind == 1 ? WeightRef::of_bf16(f.b16.data(), f.rows, f.cols)
                                      : WeightRef::of_f32(f.w.data(), f.rows, f.cols);
      const std::vector<float>& full = kind == 0 ? f.deq : kind == 1 ? f.from_bf16 : f.w;
      std::vector<float> y(static_cast<size_t>(m * f.rows)), ref(y.size());
      matmul_xwt(y.data(), x.data(), w, m, f.cols, f.rows);
      packed_gemm(ref.data(), f.rows, x.data(), f.cols, m, PackedMatrix::pack(full.data(), f.rows, f.cols), nullptr, false);
      EXPECT_EQ(y, ref) << "kind " << kind << " cols " << cols;
    }
  }
}

}  // namespace
}  // namespace tl
