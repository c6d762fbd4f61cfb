// The bf16 tile GEMMs of tensor/amx.h, on AMX or AVX512-BF16 (whichever runs here), against a
// double-precision product of the same bf16-rounded operands. Both units sum in f32 in an order of their
// own, so each element is held to the worst-case bound of an f32 sum of k products, gamma_k * sum
// |a_i b_i| with gamma_k = k u / (1 - k u), u = 2^-24; a wrong index or a missed rounding is off by
// orders of magnitude more. Both packed copies are checked element by element against torch's float ->
// bfloat16 rounding (dtype.h's f32_to_bf16) on normal values (bf16 subnormals become zero, as the tile
// unit reads them).
#include "tensor/amx.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "random_data.h"
#include "tensor/dtype.h"

namespace tl {
namespace {

using test_data::randn;

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

#define SKIP_WITHOUT_BF16_TILES() \
  if (!bf16_tiles_available()) GTEST_SKIP() << bf16_tiles_unavailable_reason()

// A product's shape (and a low-rank term's rank), named in failure messages as "MxNxK" (" rR").
struct Shape {
  int64_t m, n, k, r = 0;
};

std::string name_of(const Shape& s) {
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) +
         (s.r ? " r" + std::to_string(s.r) : "");
}

// The first element of columns [cols, ld) of `rows` rows that differs from `before` (-1 if none): a
// product must not write past its width.
int64_t first_write_past(const std::vector<float>& now, const std::vector<float>& before, int64_t rows, int64_t cols,
                         int64_t ld) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = cols; j < ld; ++j)
      if (now[i * ld + j] != before[i * ld + j]) return i * ld + j;
  return -1;
}

// y (m, n) = a (m, k) b (k, n) on rounded operands in double; `abs` gets sum |a_i b_i|.
void reference(const std::vector<float>& a, int64_t lda, const std::vector<float>& b, int64_t m, int64_t n,
               int64_t k, bool b_is_w, std::vector<double>& y, std::vector<double>& abs) {
  y.assign(static_cast<size_t>(m * n), 0.0);
  abs.assign(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, sa = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        const double bv = round_bf16(b_is_w ? b[j * k + kk] : b[kk * n + j]);
        const double p = static_cast<double>(round_bf16(a[i * lda + kk])) * bv;
        s += p;
        sa += std::fabs(p);
      }
      y[i * n + j] = s;
      abs[i * n + j] = sa;
    }
}

void expect_within_bound(const std::vector<float>& got, int64_t ldy, const std::vector<double>& want,
                         const std::vector<double>& abs, const std::vector<float>& before, int64_t m, int64_t n,
                         int64_t k, bool accumulate, const std::vector<float>* bias, const std::string& what) {
  const double u = std::ldexp(1.0, -24), gamma = (k + 2) * u / (1 - (k + 2) * u);
  int bad = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double w = want[i * n + j], extra = 0;
      if (bias) w += (*bias)[j], extra += std::fabs((*bias)[j]);
      if (accumulate) w += before[i * ldy + j], extra += std::fabs(before[i * ldy + j]);
      const double g = got[i * ldy + j], tol = gamma * (abs[i * n + j] + extra) + 1e-30;
      if (std::fabs(g - w) > tol && ++bad <= 5)
        ADD_FAILURE() << what << " (" << i << ", " << j << "): " << g << " vs " << w << " (bound " << tol << ")";
    }
  EXPECT_EQ(bad, 0) << what;
}

// TUNELOOP_BF16_UNIT=avx512-bf16 (the *_avx512_bf16 test runs) reaches the products: every test of this
// file then checks the AVX512-BF16 path, on an AMX CPU too.
TEST(Amx, UnitIsTheOneAskedFor) {
  SKIP_WITHOUT_BF16_TILES();
  const char* unit = std::getenv("TUNELOOP_BF16_UNIT");
  const std::string got = bf16_tiles_unit();
  if (unit && std::string(unit) == "avx512-bf16") EXPECT_EQ(got, "AVX512-BF16");
  else EXPECT_TRUE(got == "AMX" || got == "AVX512-BF16") << got;
}

TEST(Amx, PackedCopiesHoldTorchRounding) {
  SKIP_WITHOUT_BF16_TILES();
  for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {16, 32}, {40, 33}, {97, 70}}) {
    const std::vector<float> w = randn(static_cast<size_t>(n * k), 11);
    const AmxMatrix p = AmxMatrix::pack(w.data(), n, k);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        ASSERT_EQ(p.at(r, c), f32_to_bf16(w[r * k + c])) << n << "x" << k << " fwd (" << r << ", " << c << ")";
        ASSERT_EQ(p.at_bwd(r, c), f32_to_bf16(w[r * k + c])) << n << "x" << k << " bwd (" << r << ", " << c << ")";
      }
  }
}

// Ragged shapes on every side: rows past the 32-row tile pairs, columns past the 32-column strips, sums
// past the 32-value tile width and past one 512-value chunk (64 x 600 x 1100: three chunks forward, two
// for the input gradient); y wider than the product (ldy), with and without accumulate and bias.
TEST(Amx, ForwardAndInputGradientMatchRoundedProduct) {
  SKIP_WITHOUT_BF16_TILES();
  uint32_t seed = 1;
  for (Shape s : {Shape{1, 1, 1}, Shape{17, 40, 33}, Shape{32, 32, 32}, Shape{100, 96, 200}, Shape{200, 130, 71},
                  Shape{512, 256, 128}, Shape{64, 600, 1100}})
    for (bool accumulate : {false, true})
      for (bool with_bias : {false, true}) {
        const std::string what = name_of(s) + (accumulate ? " accumulate" : "") + (with_bias ? " bias" : "");
        const std::vector<float> w = randn(static_cast<size_t>(s.n * s.k), seed++);
        const AmxMatrix p = AmxMatrix::pack(w.data(), s.n, s.k);
        const std::vector<float> bias = randn(static_cast<size_t>(s.n), seed++);
        std::vector<double> want, abs;

        // Forward: y (m, n) = x (m, k) W^T, x rows k + 3 apart, y rows n + 5 apart.
        const int64_t ldx = s.k + 3, ldy = s.n + 5;
        const std::vector<float> x = randn(static_cast<size_t>(s.m * ldx), seed++);
        const std::vector<float> y0 = randn(static_cast<size_t>(s.m * ldy), seed++);
        std::vector<float> y = y0;
        amx_gemm_xwt(y.data(), ldy, x.data(), ldx, s.m, p, with_bias ? bias.data() : nullptr, accumulate);
        reference(x, ldx, w, s.m, s.n, s.k, /*b_is_w=*/true, want, abs);
        expect_within_bound(y, ldy, want, abs, y0, s.m, s.n, s.k, accumulate, with_bias ? &bias : nullptr,
                            "xW^T " + what);
        ASSERT_EQ(first_write_past(y, y0, s.m, s.n, ldy), -1) << "wrote past n, " << what;

        if (with_bias) continue;
        // Input gradient: dx (m, k) = dy (m, n) W.
        const int64_t lddy = s.n + 2, lddx = s.k + 7;
        const std::vector<float> dy = randn(static_cast<size_t>(s.m * lddy), seed++);
        const std::vector<float> dx0 = randn(static_cast<size_t>(s.m * lddx), seed++);
        std::vector<float> dx = dx0;
        amx_gemm_dyw(dx.data(), lddx, dy.data(), lddy, s.m, p, accumulate);
        reference(dy, lddy, w, s.m, s.k, s.n, /*b_is_w=*/false, want, abs);
        expect_within_bound(dx, lddx, want, abs, dx0, s.m, s.k, s.n, accumulate, nullptr, "dyW " + what);
        ASSERT_EQ(first_write_past(dx, dx0, s.m, s.k, lddx), -1) << "wrote past k, " << what;
      }
}

// The low-rank term (LoRA's second product folded into the base GEMM): y = x W^T + bf16(s u) bf16(V)^T
// with V one row per output, and dx = dy W + bf16(u) bf16(V) with V (r, k); ranks below, at and past one
// 32-wide tile (16, 32, 48 stacked, 20 ragged), ragged m and n, u and V rows apart by more than r. The
// whole is held to the bound of one f32 sum of k + r products.
TEST(Amx, LowRankTermIsAddedAsTheRoundedProduct) {
  SKIP_WITHOUT_BF16_TILES();
  uint32_t seed = 300;
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{17, 40, 33, 20}, Shape{100, 130, 71, 16}, Shape{64, 96, 600, 48},
                  Shape{200, 70, 128, 32}})
    for (bool accumulate : {false, true}) {
      const std::string what = name_of(s) + (accumulate ? " accumulate" : "");
      const float scale = 0.75f;
      const std::vector<float> w = randn(static_cast<size_t>(s.n * s.k), seed++);
      const AmxMatrix p = AmxMatrix::pack(w.data(), s.n, s.k);
      const int64_t ldu = s.r + 3, ldv = s.r + 1;
      const std::vector<float> u = randn(static_cast<size_t>(s.m * ldu), seed++);
      const std::vector<float> v = randn(static_cast<size_t>(s.n * ldv), seed++);  // (n, r), rows ldv apart
      const std::vector<float> x = randn(static_cast<size_t>(s.m * s.k), seed++);
      const std::vector<float> y0 = randn(static_cast<size_t>(s.m * s.n), seed++);
      // [x | s u] against [W | V]: one product of k + r.
      const int64_t kr = s.k + s.r;
      std::vector<float> xs(static_cast<size_t>(s.m * kr)), ws(static_cast<size_t>(s.n * kr));
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t c = 0; c < kr; ++c)
          xs[i * kr + c] = c < s.k ? x[i * s.k + c] : scale * u[i * ldu + c - s.k];
      for (int64_t j = 0; j < s.n; ++j)
        for (int64_t c = 0; c < kr; ++c) ws[j * kr + c] = c < s.k ? w[j * s.k + c] : v[j * ldv + c - s.k];
      std::vector<double> want, abs;
      reference(xs, kr, ws, s.m, s.n, kr, /*b_is_w=*/true, want, abs);
      std::vector<float> y = y0;
      const AmxLowRank fwd{u.data(), ldu, v.data(), ldv, s.r, /*per_output=*/true, scale};
      amx_gemm_xwt(y.data(), s.n, x.data(), s.k, s.m, p, nullptr, accumulate, &fwd);
      expect_within_bound(y, s.n, want, abs, y0, s.m, s.n, kr, accumulate, nullptr, "xW^T + low rank " + what);

      // dx (m, k) = dy (m, n) W + u (m, r) V2, V2 (r, k) rows k + 2 apart: [dy | u] against [W ; V2].
      const int64_t ldv2 = s.k + 2, nr = s.n + s.r;
      const std::vector<float> v2 = randn(static_cast<size_t>(s.r * ldv2), seed++);
      const std::vector<float> dy = randn(static_cast<size_t>(s.m * s.n), seed++);
      const std::vector<float> dx0 = randn(static_cast<size_t>(s.m * s.k), seed++);
      std::vector<float> dys(static_cast<size_t>(s.m * nr)), wb(static_cast<size_t>(nr * s.k));
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t c = 0; c < nr; ++c) dys[i * nr + c] = c < s.n ? dy[i * s.n + c] : u[i * ldu + c - s.n];
      for (int64_t c = 0; c < nr; ++c)
        for (int64_t j = 0; j < s.k; ++j) wb[c * s.k + j] = c < s.n ? w[c * s.k + j] : v2[(c - s.n) * ldv2 + j];
      reference(dys, nr, wb, s.m, s.k, nr, /*b_is_w=*/false, want, abs);
      std::vector<float> dx = dx0;
      const AmxLowRank bwd{u.data(), ldu, v2.data(), ldv2, s.r, /*per_output=*/false, 1.0f};
      amx_gemm_dyw(dx.data(), s.k, dy.data(), s.n, s.m, p, accumulate, &bwd);
      expect_within_bound(dx, s.k, want, abs, dx0, s.m, s.k, nr, accumulate, nullptr, "dyW + low rank " + what);
    }
}

// The term with u computed from the GEMM's own tiles of x (u = bf16(x) bf16(A)^T, LoRA's xa): xa holds
// the bits of x A^T multiplied apart (amx_gemm_b), and y those of the term given that xa.
TEST(Amx, LowRankTermFromTheInputsTilesIsTheProductApart) {
  SKIP_WITHOUT_BF16_TILES();
  const int64_t m = 75, n = 300, k = 700, r = 40;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 61), x = randn(static_cast<size_t>(m * k), 62),
                           a = randn(static_cast<size_t>(r * k), 63), v = randn(static_cast<size_t>(n * r), 64);
  const AmxMatrix p = AmxMatrix::pack(w.data(), n, k);
  std::vector<float> xa(static_cast<size_t>(m * r)), xa_apart(xa.size()), y(static_cast<size_t>(m * n)),
      y_given(y.size());
  AmxLowRank computed{nullptr, r, v.data(), r, r, /*per_output=*/true, 0.25f};
  computed.a = a.data();
  computed.lda = k;
  computed.xa = xa.data();
  amx_gemm_xwt(y.data(), n, x.data(), k, m, p, nullptr, false, &computed);
  amx_gemm_b(xa_apart.data(), r, x.data(), k, m, r, k, a.data(), k, /*b_transposed=*/true, nullptr, false);
  EXPECT_EQ(xa, xa_apart);
  const AmxLowRank given{xa_apart.data(), r, v.data(), r, r, /*per_output=*/true, 0.25f};
  amx_gemm_xwt(y_given.data(), n, x.data(), k, m, p, nullptr, false, &given);
  EXPECT_EQ(y, y_given);
  double norm = 0;
  for (float e : xa) norm += std::fabs(e);
  EXPECT_GT(norm, 1.0);  // not left zero

  // The input gradient's form: u = dy B for B (n, r), the term u A for A (r, k).
  const std::vector<float> dy = randn(static_cast<size_t>(m * n), 65), b = randn(static_cast<size_t>(n * r), 66);
  std::vector<float> dxa(static_cast<size_t>(m * r)), dxa_apart(dxa.size()), dx(static_cast<size_t>(m * k)),
      dx_given(dx.size());
  AmxLowRank bwd{nullptr, r, a.data(), k, r, /*per_output=*/false, 0.5f};
  bwd.a = b.data();
  bwd.lda = r;
  bwd.xa = dxa.data();
  amx_gemm_dyw(dx.data(), k, dy.data(), n, m, p, false, &bwd);
  amx_gemm_b(dxa_apart.data(), r, dy.data(), n, m, r, n, b.data(), r, /*b_transposed=*/false, nullptr, false);
  EXPECT_EQ(dxa, dxa_apart);
  const AmxLowRank bwd_given{dxa_apart.data(), r, a.data(), k, r, /*per_output=*/false, 0.5f};
  amx_gemm_dyw(dx_given.data(), k, dy.data(), n, m, p, false, &bwd_given);
  EXPECT_EQ(dx, dx_given);
}

// amx_gemm_tn, LoRA's weight gradients: c = bf16(alpha a)^T bf16(b) for a (k, m), b (k, n), against the
// double product of the rounded operands; ragged m, n and k (the sum over tokens past one 512 chunk),
// rows apart by more than their width, with and without accumulate.
TEST(Amx, TransposedProductMatchesRoundedProduct) {
  SKIP_WITHOUT_BF16_TILES();
  uint32_t seed = 400;
  for (Shape s : {Shape{1, 1, 1}, Shape{16, 512, 512}, Shape{48, 768, 700}, Shape{20, 130, 33}})
    for (bool accumulate : {false, true}) {
      const std::string what = name_of(s) + (accumulate ? " accumulate" : "");
      const float alpha = 0.5f;
      const int64_t lda = s.m + 3, ldb = s.n + 5, ldc = s.n + 1;
      const std::vector<float> a = randn(static_cast<size_t>(s.k * lda), seed++);
      const std::vector<float> b = randn(static_cast<size_t>(s.k * ldb), seed++);
      const std::vector<float> c0 = randn(static_cast<size_t>(s.m * ldc), seed++);
      std::vector<float> c = c0;
      amx_gemm_tn(c.data(), ldc, s.m, s.n, s.k, a.data(), lda, b.data(), ldb, alpha, accumulate);
      // The reference wants (alpha a)^T (m, k) dense and B^T (n, k) dense.
      std::vector<float> at(static_cast<size_t>(s.m * s.k)), bt(static_cast<size_t>(s.n * s.k));
      for (int64_t t = 0; t < s.k; ++t) {
        for (int64_t i = 0; i < s.m; ++i) at[i * s.k + t] = alpha * a[t * lda + i];
        for (int64_t j = 0; j < s.n; ++j) bt[j * s.k + t] = b[t * ldb + j];
      }
      std::vector<double> want, abs;
      reference(at, s.k, bt, s.m, s.n, s.k, /*b_is_w=*/true, want, abs);
      expect_within_bound(c, ldc, want, abs, c0, s.m, s.n, s.k, accumulate, nullptr, what);
      ASSERT_EQ(first_write_past(c, c0, s.m, s.n, ldc), -1) << "wrote past n, " << what;
    }
}

// amx_matmul on two f32 operands, B given either way and A as it is or as its transpose, as attention's
// block products call it: ragged shapes (a transposed A's rows, keys, past one 16-row strip and its sum,
// queries, past one 32-value tile), alpha, accumulate, c wider than the product.
TEST(Amx, MatmulOfTwoOperandsMatchesRoundedProduct) {
  SKIP_WITHOUT_BF16_TILES();
  uint32_t seed = 100;
  for (Shape s : {Shape{1, 1, 1}, Shape{48, 17, 64}, Shape{256, 320, 64}, Shape{40, 64, 300}, Shape{33, 70, 0},
                  Shape{200, 64, 256}, Shape{37, 64, 45}})
    for (AmxB layout : {AmxB::kRowMajor, AmxB::kTransposed})
      for (int variant = 0; variant < 4; ++variant) {
        const bool accumulate = variant & 1, a_transposed = variant & 2;
        const float alpha = accumulate ? 1.0f : 0.125f;
        const std::string what = name_of(s) + (layout == AmxB::kRowMajor ? " B" : " B^T") +
                                 (accumulate ? " accumulate" : "") + (a_transposed ? " A^T" : "");
        const int64_t lda = s.k + 5, ldc = s.n + 3;
        // B (k, n) with rows n + 2 apart, or its transpose X (n, k) with rows k + 4 apart.
        const int64_t ldb = layout == AmxB::kRowMajor ? s.n + 2 : s.k + 4;
        const std::vector<float> a = randn(static_cast<size_t>(s.m * lda), seed++);
        const std::vector<float> b = randn(static_cast<size_t>((layout == AmxB::kRowMajor ? s.k : s.n) * ldb + 1), seed++);
        const std::vector<float> c0 = randn(static_cast<size_t>(s.m * ldc), seed++);
        std::vector<float> c = c0;
        if (a_transposed) {
          // The same A given as its transpose (k, m), rows m + 6 apart.
          const int64_t ldt = s.m + 6;
          std::vector<float> at(static_cast<size_t>(std::max<int64_t>(1, s.k * ldt)));
          for (int64_t i = 0; i < s.m; ++i)
            for (int64_t kk = 0; kk < s.k; ++kk) at[kk * ldt + i] = a[i * lda + kk];
          amx_matmul(c.data(), ldc, s.m, s.n, s.k, at.data(), ldt, b.data(), ldb, layout, alpha, accumulate, true);
        } else {
          amx_matmul(c.data(), ldc, s.m, s.n, s.k, a.data(), lda, b.data(), ldb, layout, alpha, accumulate);
        }
        // The reference wants B^T dense (n, k).
        std::vector<float> w(static_cast<size_t>(s.n * s.k));
        for (int64_t j = 0; j < s.n; ++j)
          for (int64_t kk = 0; kk < s.k; ++kk)
            w[j * s.k + kk] = layout == AmxB::kRowMajor ? b[kk * ldb + j] : b[j * ldb + kk];
        std::vector<double> want, abs;
        reference(a, lda, w, s.m, s.n, s.k, /*b_is_w=*/true, want, abs);
        for (double& v : want) v *= alpha;
        for (double& v : abs) v *= alpha;
        expect_within_bound(c, ldc, want, abs, c0, s.m, s.n, s.k, accumulate, nullptr, what);
        ASSERT_EQ(first_write_past(c, c0, s.m, s.n, ldc), -1) << "wrote past n, " << what;
      }
}

// amx_gemm_b packs an f32 B per call (QLoRA's dequantised blocks): x W^T from W's rows split in two
// along n, and dy W with the sum split at 1024, give the bits of the whole-matrix tiles' products.
TEST(Amx, PerCallPackingGivesTheTilesBits) {
  SKIP_WITHOUT_BF16_TILES();
  const int64_t m = 70, n = 1500, k = 600;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 41), x = randn(static_cast<size_t>(m * k), 42),
                           dy = randn(static_cast<size_t>(m * n), 43), bias = randn(static_cast<size_t>(n), 44);
  const AmxMatrix p = AmxMatrix::pack(w.data(), n, k);
  std::vector<float> whole(static_cast<size_t>(m * n)), parts(whole.size());
  amx_gemm_xwt(whole.data(), n, x.data(), k, m, p, bias.data(), false);
  const int64_t cut = 736;  // a multiple of 32 columns
  amx_gemm_b(parts.data(), n, x.data(), k, m, cut, k, w.data(), k, /*b_transposed=*/true, bias.data(), false);
  amx_gemm_b(parts.data() + cut, n, x.data(), k, m, n - cut, k, w.data() + cut * k, k, true, bias.data() + cut, false);
  EXPECT_EQ(whole, parts);
  std::vector<float> dx_whole(static_cast<size_t>(m * k)), dx_parts(dx_whole.size());
  amx_gemm_dyw(dx_whole.data(), k, dy.data(), n, m, p, false);
  amx_gemm_b(dx_parts.data(), k, dy.data(), n, m, k, 1024, w.data(), k, /*b_transposed=*/false, nullptr, false);
  amx_gemm_b(dx_parts.data(), k, dy.data() + 1024, n, m, k, n - 1024, w.data() + 1024 * k, k, false, nullptr, true);
  EXPECT_EQ(dx_whole, dx_parts);

  // A bf16 B packed as it is gives the bits of the f32 B it converts to exactly (QLoRA's bf16 head).
  std::vector<uint16_t> wb(w.size());
  std::vector<float> wf(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]), wf[i] = bf16_to_f32(wb[i]);
  std::vector<float> from_f32(whole.size()), from_bf16(whole.size());
  amx_gemm_b(from_f32.data(), n, x.data(), k, m, n, k, wf.data(), k, /*b_transposed=*/true, bias.data(), false);
  amx_gemm_b(from_bf16.data(), n, x.data(), k, m, n, k, wb.data(), k, /*b_transposed=*/true, bias.data(), false);
  EXPECT_EQ(from_f32, from_bf16);
  std::vector<float> dx_f32(dx_whole.size()), dx_bf16(dx_whole.size());
  amx_gemm_b(dx_f32.data(), k, dy.data(), n, m, k, n, wf.data(), k, /*b_transposed=*/false, nullptr, false);
  amx_gemm_b(dx_bf16.data(), k, dy.data(), n, m, k, n, wb.data(), k, /*b_transposed=*/false, nullptr, false);
  EXPECT_EQ(dx_f32, dx_bf16);

  // With a low-rank term: V's rows for each part's outputs forward; the term on the last part of the sum.
  const int64_t r = 24;
  const std::vector<float> u = randn(static_cast<size_t>(m * r), 45), v = randn(static_cast<size_t>(n * r), 46),
                           a = randn(static_cast<size_t>(r * k), 47);
  const AmxLowRank fwd{u.data(), r, v.data(), r, r, /*per_output=*/true, 0.5f};
  amx_gemm_xwt(whole.data(), n, x.data(), k, m, p, bias.data(), false, &fwd);
  AmxLowRank second = fwd;
  second.v = v.data() + cut * r;
  amx_gemm_b(parts.data(), n, x.data(), k, m, cut, k, w.data(), k, true, bias.data(), false, &fwd);
  amx_gemm_b(parts.data() + cut, n, x.data(), k, m, n - cut, k, w.data() + cut * k, k, true, bias.data() + cut, false,
             &second);
  EXPECT_EQ(whole, parts);
  const AmxLowRank bwd{u.data(), r, a.data(), k, r, /*per_output=*/false, 1.0f};
  amx_gemm_dyw(dx_whole.data(), k, dy.data(), n, m, p, false, &bwd);
  amx_gemm_b(dx_parts.data(), k, dy.data(), n, m, k, 1024, w.data(), k, false, nullptr, false);
  amx_gemm_b(dx_parts.data(), k, dy.data() + 1024, n, m, k, n - 1024, w.data() + 1024 * k, k, false, nullptr, true,
             &bwd);
  EXPECT_EQ(dx_whole, dx_parts);
}

// The operands really are rounded: an f32 product of the unrounded values differs by far more than
// the bound on most elements (so a kernel that skipped the rounding would fail the test above).
TEST(Amx, RoundsOperandsToBf16) {
  SKIP_WITHOUT_BF16_TILES();
  const int64_t m = 32, n = 32, k = 64;
  const std::vector<float> w = randn(static_cast<size_t>(n * k), 5), x = randn(static_cast<size_t>(m * k), 6);
  const AmxMatrix p = AmxMatrix::pack(w.data(), n, k);
  std::vector<float> y(static_cast<size_t>(m * n));
  amx_gemm_xwt(y.data(), n, x.data(), k, m, p, nullptr, false);
  int differ = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double exact = 0;
      for (int64_t kk = 0; kk < k; ++kk) exact += static_cast<double>(x[i * k + kk]) * w[j * k + kk];
      differ += std::fabs(y[i * n + j] - exact) > 1e-4;
    }
  EXPECT_GT(differ, m * n / 2);
}

}  // namespace
}  // namespace tl
