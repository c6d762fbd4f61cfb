// The packed-panel GEMM of tensor/packed.h against a scalar reference that states its contract: every
// output element is one std::fma chain over k in order (over the terms in order; long single sums in
// chunks of 2048, each added to y), then + bias, then + y when accumulating. So the comparison is
// bit-for-bit, for every ISA's kernel, every row count (one row, the register tile, ragged tails) and
// ragged column panels; a double-precision product checks the reference itself. The input-gradient GEMM
// read from the forward's packing (packed_gemm_dyw) is held to its own contract the same way.
#include "tensor/packed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/kernels.h"
#include "random_data.h"

namespace tl {
namespace {

using test_data::randn;

// One term: x (m, k) times W^T for W (n, k) row-major (packed in the test), or times B (k, n) row-major.
struct RefTerm {
  const float* x;
  int64_t ldx;
  const float* w;  // W (n, k) when transposed, B (k, n) otherwise
  int64_t k;
  bool transposed;
};

float weight(const RefTerm& t, int64_t n_cols, int64_t kk, int64_t j) {
  return t.transposed ? t.w[j * t.k + kk] : t.w[kk * n_cols + j];
}

// The contract, written out.
void reference(float* y, int64_t m, int64_t n, const std::vector<RefTerm>& terms, const float* bias, bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const bool chunked = terms.size() == 1 && terms[0].transposed && terms[0].k > 2048;
      if (chunked) {
        const RefTerm& t = terms[0];
        for (int64_t k0 = 0; k0 < t.k; k0 += 2048) {
          float acc = 0.0f;
          for (int64_t kk = k0; kk < std::min<int64_t>(t.k, k0 + 2048); ++kk)
            acc = std::fma(t.x[i * t.ldx + kk], weight(t, n, kk, j), acc);
          if (k0 == 0 && bias) acc = acc + bias[j];
          y[i * n + j] = (accumulate || k0 > 0) ? y[i * n + j] + acc : acc;
        }
        continue;
      }
      float acc = 0.0f;
      for (const RefTerm& t : terms)
        for (int64_t kk = 0; kk < t.k; ++kk) acc = std::fma(t.x[i * t.ldx + kk], weight(t, n, kk, j), acc);
      if (bias) acc = acc + bias[j];
      y[i * n + j] = accumulate ? y[i * n + j] + acc : acc;
    }
}

void expect_bitwise(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want[i], 4);
    ASSERT_EQ(a, b) << what << " element " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(Packed, PackLaysOutPanelsOfTheTranspose) {
  const int64_t n = 45, k = 7;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 1);
  const PackedMatrix p = PackedMatrix::pack(w.data(), n, k);
  EXPECT_EQ(p.panels(), 2);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) EXPECT_EQ(p.at(r, c), w[static_cast<size_t>(r * k + c)]);
  // The padding of the last panel is zero, so padded lanes never turn into NaN.
  for (int64_t c = 0; c < k; ++c)
    for (int64_t r = n; r < 64; ++r) EXPECT_EQ(p.panel(1)[c * 32 + r - 32], 0.0f);
}

TEST(Packed, GemmIsTheFmaChainForEveryShape) {
  for (int64_t m : {1, 2, 11, 12, 13, 40}) {
    for (int64_t n : {1, 31, 32, 33, 100}) {
      for (int64_t k : {1, 17, 300}) {
        const std::vector<float> w = randn(static_cast<size_t>(n * k), 2), x = randn(static_cast<size_t>(m * k), 3);
        const std::vector<float> bias = randn(static_cast<size_t>(n), 4), y0 = randn(static_cast<size_t>(m * n), 5);
        const PackedMatrix p = PackedMatrix::pack(w.data(), n, k);
        for (bool with_bias : {false, true}) {
          for (bool acc : {false, true}) {
            std::vector<float> got = y0, want = y0;
            packed_gemm(got.data(), n, x.data(), k, m, p, with_bias ? bias.data() : nullptr, acc);
            reference(want.data(), m, n, {{x.data(), k, w.data(), k, true}}, with_bias ? bias.data() : nullptr, acc);
            expect_bitwise(got, want, "m " + std::to_string(m) + " n " + std::to_string(n) + " k " + std::to_string(k));
          }
        }
      }
    }
  }
}

// got (m, n) against the product summed in double over `depth`: sum over t of a(i, t) b(t, j).
template <typename A, typename B>
void expect_product(const std::vector<float>& got, int64_t m, int64_t n, int64_t depth, A a, B b) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < depth; ++t) s += static_cast<double>(a(i, t)) * b(t, j);
      EXPECT_NEAR(got[static_cast<size_t>(i * n + j)], s, 1e-4 * std::max(1.0, std::abs(s))) << i << ", " << j;
    }
}

TEST(Packed, ReferenceIsTheProduct) {
  const int64_t m = 9, n = 40, k = 257;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 6), x = randn(static_cast<size_t>(m * k), 7);
  std::vector<float> y(static_cast<size_t>(m * n));
  packed_gemm(y.data(), n, x.data(), k, m, PackedMatrix::pack(w.data(), n, k), nullptr, false);
  expect_product(y, m, n, k, [&](int64_t i, int64_t t) { return x[i * k + t]; },
                 [&](int64_t t, int64_t j) { return w[j * k + t]; });
}

TEST(Packed, PackedAndRowMajorTermsShareOneSum) {
  // y += x W^T + u B: a base GEMM with a LoRA-like short second term read in place.
  const int64_t m = 30, n = 70, k = 64, r = 16;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 8), x = randn(static_cast<size_t>(m * k), 9);
  const std::vector<float> u = randn(static_cast<size_t>(m * r), 10), b = randn(static_cast<size_t>(r * n), 11);
  const std::vector<float> y0 = randn(static_cast<size_t>(m * n), 12);
  const PackedMatrix p = PackedMatrix::pack(w.data(), n, k);
  const GemmTerm terms[] = {GemmTerm::of_packed(x.data(), k, p), GemmTerm::of_rowmajor(u.data(), r, b.data(), r, n)};
  std::vector<float> got = y0, want = y0;
  gemm(got.data(), n, m, n, terms, nullptr, true);
  reference(want.data(), m, n, {{x.data(), k, w.data(), k, true}, {u.data(), r, b.data(), r, false}}, nullptr, true);
  expect_bitwise(got, want, "two terms");
}

TEST(Packed, LongSumsAreChunkedTheSameForOneRowAndMany) {
  const int64_t m = 25, n = 40, k = 5000;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 13), x = randn(static_cast<size_t>(m * k), 14);
  const PackedMatrix p = PackedMatrix::pack(w.data(), n, k);
  std::vector<float> all(static_cast<size_t>(m * n)), want(all.size());
  packed_gemm(all.data(), n, x.data(), k, m, p, nullptr, false);
  reference(want.data(), m, n, {{x.data(), k, w.data(), k, true}}, nullptr, false);
  expect_bitwise(all, want, "chunked");
  for (int64_t i = 0; i < m; ++i) {
    std::vector<float> one(static_cast<size_t>(n));
    packed_gemm(one.data(), n, x.data() + i * k, k, 1, p, nullptr, false);
    expect_bitwise(one, std::vector<float>(all.begin() + i * n, all.begin() + (i + 1) * n), "row " + std::to_string(i));
  }
}

TEST(Packed, EveryIsaComputesTheSameBits) {
  const int64_t m = 14, n = 64, k = 100;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 15), x = randn(static_cast<size_t>(m * k), 16);
  const PackedMatrix p = PackedMatrix::pack(w.data(), n, k);
  std::vector<float> want(static_cast<size_t>(m * n));
  reference(want.data(), m, n, {{x.data(), k, w.data(), k, true}}, nullptr, false);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!cpu_supports(isa)) continue;
    const PanelSegment seg{x.data(), k, p.panel(0), k, k * 32, 32};
    for (int64_t rows : {int64_t{1}, m}) {
      std::vector<float> got(static_cast<size_t>(rows * n));
      kernels_for(isa).panel_gemm(got.data(), n, &seg, 1, rows, n, nullptr, false);
      expect_bitwise(got, std::vector<float>(want.begin(), want.begin() + rows * n),
                     std::string(isa_name(isa)) + " rows " + std::to_string(rows));
    }
  }
}

// The columns from a panel boundary on (the last layer's k and v without its q) are those columns of
// the whole GEMM, bit for bit, for short sums and chunked long ones, with bias and accumulation.
TEST(Packed, ColumnsFromAPanelOnAreThoseOfTheWholeGemm) {
  const int64_t m = 13, n = 100;
  for (int64_t k : {40, 2100}) {
    const std::vector<float> w = randn(static_cast<size_t>(n * k), 40), x = randn(static_cast<size_t>(m * k), 41);
    const std::vector<float> bias = randn(static_cast<size_t>(n), 42), y0 = randn(static_cast<size_t>(m * n), 43);
    const PackedMatrix p = PackedMatrix::pack(w.data(), n, k);
    for (bool acc : {false, true}) {
      std::vector<float> whole = y0;
      packed_gemm(whole.data(), n, x.data(), k, m, p, bias.data(), acc);
      for (int64_t col0 : {32, 64, 96}) {
        std::vector<float> got = y0;
        packed_gemm_cols(got.data() + col0, n, x.data(), k, m, p, col0, bias.data(), acc);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            const float want = j < col0 ? y0[static_cast<size_t>(i * n + j)] : whole[static_cast<size_t>(i * n + j)];
            ASSERT_EQ(std::memcmp(&got[static_cast<size_t>(i * n + j)], &want, 4), 0)
                << "k " << k << " col0 " << col0 << " at " << i << ", " << j;
          }
      }
    }
  }
}

// The fused MLP projection: act = silu(x Wg^T + bg) (x Wu^T + bu) must be the two-step path's bits
// (packed_gemm into the (m, 2 I) gate/up buffer, then swiglu on each row), for every ISA's kernel and
// every row count around its register tile.
TEST(Packed, FusedSwigluIsTheGemmThenSwigluBitForBit) {
  const int64_t features = 64;  // two gate panels, two up panels
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!cpu_supports(isa)) continue;
    const KernelTable& kt = kernels_for(isa);
    for (int64_t k : {1, 17, 300}) {
      const std::vector<float> w = randn(static_cast<size_t>(2 * features * k), 30);
      const std::vector<float> bias = randn(static_cast<size_t>(2 * features), 31);
      const PackedMatrix p = PackedMatrix::pack(w.data(), 2 * features, k);
      ASSERT_TRUE(swiglu_fusable(p));
      for (int64_t m : {1, 5, 6, 7, 13, 40}) {
        const std::vector<float> x = randn(static_cast<size_t>(m * k), 32);
        for (bool with_bias : {false, true}) {
          const float* b = with_bias ? bias.data() : nullptr;
          std::vector<float> gu(static_cast<size_t>(m * 2 * features)), want(static_cast<size_t>(m * features));
          reference(gu.data(), m, 2 * features, {{x.data(), k, w.data(), k, true}}, b, false);
          for (int64_t i = 0; i < m; ++i)
            kt.swiglu(&want[static_cast<size_t>(i * features)], &gu[static_cast<size_t>(i * 2 * features)],
                      &gu[static_cast<size_t>(i * 2 * features + features)], features);
          std::vector<float> got(want.size());
          for (int64_t q = 0; q < features / 32; ++q)
            kt.panel_gemm_swiglu(got.data() + q * 32, features, x.data(), k, k, p.panel(q), p.panel(features / 32 + q), m,
                                 b ? b + q * 32 : nullptr, b ? b + features + q * 32 : nullptr);
          const std::string what = std::string(isa_name(isa)) + " m " + std::to_string(m) + " k " + std::to_string(k);
          expect_bitwise(got, want, what);
          if (isa != active_isa()) continue;
          std::vector<float> driven(want.size());
          packed_gemm_swiglu(driven.data(), features, x.data(), k, m, p, b);
          expect_bitwise(driven, want, "packed_gemm_swiglu " + what);
        }
      }
    }
  }
  // Features that do not fill whole panels, or sums long enough to be chunked, take the two-step path.
  const std::vector<float> w = randn(90 * 8, 33), wl = randn(64 * 2049, 34);
  EXPECT_FALSE(swiglu_fusable(PackedMatrix::pack(w.data(), 90, 8)));
  EXPECT_FALSE(swiglu_fusable(PackedMatrix::pack(wl.data(), 64, 2049)));
}

// The input-gradient contract, written out: dx (m, k) (+)= dy (m, n) W for W (n, k); the sum over W's n
// rows runs in chunks of kGradChunk, each chunk one std::fma chain from zero, added to dx.
void reference_dyw(float* dx, const float* dy, const float* w, int64_t m, int64_t n, int64_t k, bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t r0 = 0; r0 < n; r0 += kGradChunk) {
        float acc = 0.0f;
        for (int64_t r = r0; r < std::min(n, r0 + kGradChunk); ++r) acc = std::fma(dy[i * n + r], w[r * k + j], acc);
        dx[i * k + j] = (accumulate || r0 > 0) ? dx[i * k + j] + acc : acc;
      }
}

TEST(Packed, InputGradientFromTheForwardPackingIsTheChunkedFmaChain) {
  // n: one chunk, a ragged one, several (the LM head's vocabulary-long sum); k: ragged strips of W's columns.
  for (int64_t n : {45, 512, 1100}) {
    for (int64_t k : {32, 70}) {
      for (int64_t m : {1, 13, 40}) {
        const std::vector<float> w = randn(static_cast<size_t>(n * k), 18), dy = randn(static_cast<size_t>(m * n), 19);
        const std::vector<float> dx0 = randn(static_cast<size_t>(m * k), 20);
        const PackedMatrix p = PackedMatrix::pack(w.data(), n, k);
        for (bool acc : {false, true}) {
          std::vector<float> got = dx0, want = dx0;
          packed_gemm_dyw(got.data(), k, dy.data(), n, m, p, acc);
          reference_dyw(want.data(), dy.data(), w.data(), m, n, k, acc);
          expect_bitwise(got, want, "m " + std::to_string(m) + " n " + std::to_string(n) + " k " + std::to_string(k));
        }
      }
    }
  }
  // The reference is the product.
  const int64_t m = 5, n = 700, k = 40;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 21), dy = randn(static_cast<size_t>(m * n), 22);
  std::vector<float> dx(static_cast<size_t>(m * k));
  packed_gemm_dyw(dx.data(), k, dy.data(), n, m, PackedMatrix::pack(w.data(), n, k), false);
  expect_product(dx, m, k, n, [&](int64_t i, int64_t t) { return dy[i * n + t]; },
                 [&](int64_t t, int64_t j) { return w[t * k + j]; });
}

TEST(Packed, EveryIsaTransposesBlocksAlike) {
  for (int64_t lds : {32, 37, 100}) {  // a panel's block, and rows of a wider matrix
    const std::vector<float> src = randn(static_cast<size_t>(32 * lds), 23);
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (!cpu_supports(isa)) continue;
      std::vector<float> dst(40 * 32, -1.0f);  // rows 40 apart: the stride is honoured, the gaps untouched
      kernels_for(isa).transpose32(dst.data(), 40, src.data(), lds);
      for (int64_t j = 0; j < 32; ++j)
        for (int64_t i = 0; i < 40; ++i)
          ASSERT_EQ(dst[static_cast<size_t>(j * 40 + i)], i < 32 ? src[static_cast<size_t>(i * lds + j)] : -1.0f)
              << isa_name(isa) << " lds " << lds << " row " << j << " col " << i;
    }
  }
}

}  // namespace
}  // namespace tl
