// The converting GEMMs of tensor/matmul.h (QLoRA's NF4 projections, its bf16 embedding) against the same
// GEMM on the whole converted matrix, with shapes that need several ragged blocks and panels: sgemm for
// general alpha/beta (row blocks), the packed kernel for the model's alpha-1 GEMMs (panels converted on
// the fly). Each output element is the same sum, so the results must be bit-identical.
#include "tensor/matmul.h"

#include <gtest/gtest.h>

#include <vector>

#include "tensor/blas.h"
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

// 4500 rows of 256: two row blocks for x W^T, two column blocks for dy W (the last ones ragged).
TEST(Matmul, BlocksEqualOneGemmOnTheConvertedMatrix) {
  const Fixture f = make(4500, 256);
  ASSERT_GT(f.rows, matmul_block_rows(f.cols));  // more than one block (else this tests nothing)
  const int64_t m = 37;
  const auto x = randn(static_cast<size_t>(m * f.cols), 8), dy = randn(static_cast<size_t>(m * f.rows), 9);
  for (int kind = 0; kind < 2; ++kind) {
    const WeightRef w = kind == 0 ? WeightRef::of_nf4(&f.q, f.rows, f.cols) : WeightRef::of_bf16(f.b16.data(), f.rows, f.cols);
    const std::vector<float>& full = kind == 0 ? f.deq : f.from_bf16;
    std::vector<float> y(static_cast<size_t>(m * f.rows), 1.0f), ref = y;
    matmul_xwt(y.data(), x.data(), w, m, f.cols, f.rows, 0.5f, 0.25f);
    sgemm(false, true, m, static_cast<int>(f.rows), static_cast<int>(f.cols), 0.5f, x.data(), static_cast<int>(f.cols),
          full.data(), static_cast<int>(f.cols), 0.25f, ref.data(), static_cast<int>(f.rows));
    EXPECT_EQ(y, ref) << (kind == 0 ? "nf4" : "bf16") << " x W^T";
    // alpha 1 (the model's GEMMs): panels converted on the fly into the packed kernel, bit for bit the
    // packed GEMMs on the converted matrix, for x W^T and (4500 rows: a chunked sum) dy W.
    const PackedMatrix packed = PackedMatrix::pack(full.data(), f.rows, f.cols);
    std::vector<float> y1(static_cast<size_t>(m * f.rows), 1.0f), ref1 = y1;
    matmul_xwt(y1.data(), x.data(), w, m, f.cols, f.rows, 1.0f, 1.0f);
    packed_gemm(ref1.data(), f.rows, x.data(), f.cols, m, packed, nullptr, true);
    EXPECT_EQ(y1, ref1) << (kind == 0 ? "nf4" : "bf16") << " x W^T, alpha 1";
    std::vector<float> dx(static_cast<size_t>(m * f.cols), 1.0f), dref = dx;
    matmul_dyw(dx.data(), dy.data(), w, m, f.rows, f.cols, 1.0f, 1.0f);
    packed_gemm_dyw(dref.data(), f.cols, dy.data(), f.rows, m, packed, true);
    EXPECT_EQ(dx, dref) << (kind == 0 ? "nf4" : "bf16") << " dy W";
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
  // f32 operands go straight to sgemm.
  std::vector<float> y(static_cast<size_t>(m * f.rows)), ref(y.size());
  matmul_xwt(y.data(), x.data(), WeightRef::of_f32(f.w.data(), f.rows, f.cols), m, f.cols, f.rows);
  sgemm(false, true, m, static_cast<int>(f.rows), static_cast<int>(f.cols), 1.0f, x.data(), static_cast<int>(f.cols),
        f.w.data(), static_cast<int>(f.cols), 0.0f, ref.data(), static_cast<int>(f.rows));
  EXPECT_EQ(y, ref);
}

// Ragged shapes for the converted x W^T: input widths that are not whole 32 x 32 blocks (the block
// transpose, then a scalar tail) and a last panel of a few rows, bit for bit the packed GEMM.
TEST(Matmul, ConvertedPanelsOfRaggedShapesArePackedGemmBits) {
  for (int64_t cols : {40, 100, 64}) {
    const Fixture f = make(70, cols);
    const int64_t m = 13;
    const auto x = randn(static_cast<size_t>(m * f.cols), 11);
    for (int kind = 0; kind < 2; ++kind) {
      const WeightRef w = kind == 0 ? WeightRef::of_nf4(&f.q, f.rows, f.cols) : WeightRef::of_bf16(f.b16.data(), f.rows, f.cols);
      const std::vector<float>& full = kind == 0 ? f.deq : f.from_bf16;
      std::vector<float> y(static_cast<size_t>(m * f.rows)), ref(y.size());
      matmul_xwt(y.data(), x.data(), w, m, f.cols, f.rows);
      packed_gemm(ref.data(), f.rows, x.data(), f.cols, m, PackedMatrix::pack(full.data(), f.rows, f.cols), nullptr, false);
      EXPECT_EQ(y, ref) << (kind == 0 ? "nf4" : "bf16") << " cols " << cols;
    }
  }
}

}  // namespace
}  // namespace tl
