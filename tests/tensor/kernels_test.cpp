// Every ISA's kernels against naive double-precision references, and the BLAS path against a triple loop.
#include "tensor/kernels.h"

#include <gtest/gtest.h>

#include <strings.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "tensor/blas.h"
#include "tensor/rope.h"
#include "tensor/thread_pool.h"
#include "random_data.h"
#include "run_command.h"

namespace tl {
namespace {

using test_data::randn;

class Kernels : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " not supported by this CPU";
  }
  const KernelTable& k() { return kernels_for(GetParam()); }
};

// Lengths that exercise full vectors, unrolled blocks and every tail.
const int64_t kLengths[] = {1, 7, 16, 17, 64, 100, 1031};

TEST_P(Kernels, DotAndAxpy) {
  for (int64_t n : kLengths) {
    auto a = randn(static_cast<size_t>(n), 1), b = randn(static_cast<size_t>(n), 2);
    double ref = 0;
    for (int64_t i = 0; i < n; ++i) ref += static_cast<double>(a[static_cast<size_t>(i)]) * b[static_cast<size_t>(i)];
    EXPECT_NEAR(k().dot(a.data(), b.data(), n), ref, 1e-5 * std::sqrt(static_cast<double>(n)) + 1e-6) << n;
    auto y = b;
    k().axpy(y.data(), 0.5f, a.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[static_cast<size_t>(i)], b[static_cast<size_t>(i)] + 0.5 * a[static_cast<size_t>(i)], 1e-6);
  }
}

TEST_P(Kernels, RmsNorm) {
  for (int64_t n : kLengths) {
    auto x = randn(static_cast<size_t>(3 * n), 3), w = randn(static_cast<size_t>(n), 4);
    std::vector<float> out(x.size());
    k().rmsnorm(out.data(), x.data(), w.data(), 3, n, 1e-6f);
    for (int64_t r = 0; r < 3; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[static_cast<size_t>(r * n + i)]) * x[static_cast<size_t>(r * n + i)];
      double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-6);
      for (int64_t i = 0; i < n; ++i) {
        double ref = w[static_cast<size_t>(i)] * x[static_cast<size_t>(r * n + i)] * inv;
        EXPECT_NEAR(out[static_cast<size_t>(r * n + i)], ref, 1e-5 * (1 + std::fabs(ref)));
      }
    }
  }
}

// rmsnorm_rstd equals rmsnorm and stores rstd; rmsnorm_backward against the analytic gradient in double,
// including the in-place form (dx aliasing dy) that q/k norm uses.
TEST_P(Kernels, RmsNormBackward) {
  for (int64_t n : kLengths) {
    const int64_t rows = 3;
    auto x = randn(static_cast<size_t>(rows * n), 31), w = randn(static_cast<size_t>(n), 32);
    auto dy = randn(static_cast<size_t>(rows * n), 33);
    std::vector<float> out(x.size()), out2(x.size()), rstd(rows), dx(x.size());
    k().rmsnorm_rstd(out.data(), rstd.data(), x.data(), w.data(), rows, n, 1e-6f);
    k().rmsnorm(out2.data(), x.data(), w.data(), rows, n, 1e-6f);
    EXPECT_EQ(out, out2) << n;
    k().rmsnorm_backward(dx.data(), dy.data(), x.data(), w.data(), rstd.data(), rows, n);
    for (int64_t r = 0; r < rows; ++r) {
      const size_t o = static_cast<size_t>(r * n);
      double ss = 0, dot = 0;
      for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[o + i]) * x[o + i];
      const double rs = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-6);
      EXPECT_NEAR(rstd[static_cast<size_t>(r)], rs, 1e-5 * rs);
      for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(w[static_cast<size_t>(i)]) * dy[o + i] * x[o + i];
      double scale = 0;
      for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(rs * w[static_cast<size_t>(i)] * dy[o + i]));
      for (int64_t i = 0; i < n; ++i) {
        const double ref = rs * w[static_cast<size_t>(i)] * dy[o + i] - dot * rs * rs * rs / static_cast<double>(n) * x[o + i];
        EXPECT_NEAR(dx[o + i], ref, 1e-5 * (1 + scale)) << n << " " << i;
      }
    }
    auto inplace = dy;
    k().rmsnorm_backward(inplace.data(), inplace.data(), x.data(), w.data(), rstd.data(), rows, n);
    EXPECT_EQ(inplace, dx) << n;
  }
}

TEST_P(Kernels, SwiGluBackward) {
  for (int64_t n : kLengths) {
    auto g = randn(static_cast<size_t>(n), 41, 4.0f), u = randn(static_cast<size_t>(n), 42);
    auto da = randn(static_cast<size_t>(n), 43);
    std::vector<float> dg(static_cast<size_t>(n)), du(static_cast<size_t>(n));
    k().swiglu_backward(dg.data(), du.data(), da.data(), g.data(), u.data(), n);
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      const double gd = g[i], sg = 1.0 / (1.0 + std::exp(-gd));
      const double ref_du = da[i] * gd * sg;
      const double ref_dg = da[i] * u[i] * sg * (1.0 + gd * (1.0 - sg));
      EXPECT_NEAR(du[i], ref_du, 2e-6 * (1 + std::fabs(ref_du))) << n << " " << i;
      EXPECT_NEAR(dg[i], ref_dg, 2e-6 * (1 + std::fabs(ref_dg))) << n << " " << i;
    }
  }
}

TEST_P(Kernels, SwiGluAndSoftmax) {
  for (int64_t n : kLengths) {
    auto g = randn(static_cast<size_t>(n), 5, 4.0f), u = randn(static_cast<size_t>(n), 6);
    std::vector<float> out(static_cast<size_t>(n));
    k().swiglu(out.data(), g.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      double gd = g[static_cast<size_t>(i)];
      double ref = gd / (1 + std::exp(-gd)) * u[static_cast<size_t>(i)];
      EXPECT_NEAR(out[static_cast<size_t>(i)], ref, 2e-6 * (1 + std::fabs(ref)));
    }
    // softmax(x * scale) in place; the guard element past n stays untouched (tails are masked stores).
    for (float scale : {1.0f, 0.125f, 0.37f}) {
      auto s = randn(static_cast<size_t>(n), 7, 10.0f);
      std::vector<double> scaled;
      for (float v : s) scaled.push_back(static_cast<double>(v * scale));
      s.push_back(42.0f);
      k().softmax(s.data(), n, scale);
      EXPECT_EQ(s.back(), 42.0f);
      double mx = -1e30, sum = 0;
      for (double v : scaled) mx = std::max(mx, v);
      for (double v : scaled) sum += std::exp(v - mx);
      for (int64_t i = 0; i < n; ++i) {
        double ref = std::exp(scaled[static_cast<size_t>(i)] - mx) / sum;
        EXPECT_NEAR(s[static_cast<size_t>(i)], ref, 1e-6 + 1e-5 * ref) << "n " << n << " scale " << scale;
      }
    }
  }
  std::vector<float> extreme = {-1000.0f, 0.0f, 1000.0f};
  k().softmax(extreme.data(), 3, 1.0f);
  EXPECT_EQ(extreme[2], 1.0f);
  EXPECT_EQ(extreme[0], 0.0f);
}

// Ranks that use one, two, three and four vectors per chunk on each ISA, several chunks, and masked
// tails; row counts around every ISA's row tile; strides wider than the rank; dy wider than the
// kernel's column blocks (dxa's sums carried across them).
TEST_P(Kernels, LoraDyIsBothProductsInOnePass) {
  for (int64_t r : {1, 8, 16, 17, 32, 48, 64, 70, 130}) {
    for (int64_t m : {1, 5, 9, 64}) {
      const int64_t n = 300, lddy = n + 3, ldxa = 3 * r + 1, ldx = 2 * r + 5;
      const float s = 0.75f;
      auto dy = randn(static_cast<size_t>(m * lddy), 20), b = randn(static_cast<size_t>(n * r), 21),
           xa = randn(static_cast<size_t>(m * ldx), 22), db0 = randn(static_cast<size_t>(n * r), 23);
      std::vector<float> dxa(static_cast<size_t>(m * ldxa), -9.0f), db = db0;
      k().lora_dy(dxa.data(), ldxa, db.data(), r, dy.data(), lddy, b.data(), xa.data(), ldx, m, n, r, s);
      for (int64_t t = 0; t < m; ++t) {
        for (int64_t c = 0; c < r; ++c) {
          double ref = 0;
          for (int64_t j = 0; j < n; ++j)
            ref += static_cast<double>(dy[static_cast<size_t>(t * lddy + j)]) * b[static_cast<size_t>(j * r + c)];
          ASSERT_NEAR(dxa[static_cast<size_t>(t * ldxa + c)], s * ref, 1e-4) << "r " << r << " m " << m;
        }
        for (int64_t c = r; c < ldxa; ++c) ASSERT_EQ(dxa[static_cast<size_t>(t * ldxa + c)], -9.0f) << "wrote past r";
      }
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < r; ++c) {
          double ref = db0[static_cast<size_t>(j * r + c)];
          for (int64_t t = 0; t < m; ++t)
            ref += static_cast<double>(dy[static_cast<size_t>(t * lddy + j)]) * xa[static_cast<size_t>(t * ldx + c)];
          ASSERT_NEAR(db[static_cast<size_t>(j * r + c)], ref, 1e-4) << "r " << r << " m " << m;
        }
      // db rows padded to 16 floats: whole-vector stores into the padding, the same bits in the rows.
      const int64_t ld = (r + 15) / 16 * 16;
      std::vector<float> db_pad(static_cast<size_t>(n * ld), 5.0f), dxa_pad(dxa.size(), -9.0f);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < r; ++c) db_pad[static_cast<size_t>(j * ld + c)] = db0[static_cast<size_t>(j * r + c)];
      k().lora_dy(dxa_pad.data(), ldxa, db_pad.data(), ld, dy.data(), lddy, b.data(), xa.data(), ldx, m, n, r, s);
      ASSERT_EQ(dxa_pad, dxa) << "r " << r << " m " << m;
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < r; ++c)
          ASSERT_EQ(db_pad[static_cast<size_t>(j * ld + c)], db[static_cast<size_t>(j * r + c)]) << "r " << r << " m " << m;
      // Same FMA chains in every ISA: bit for bit the scalar table's.
      std::vector<float> dxa_s(dxa.size(), -9.0f), db_s = db0;
      kernels_for(Isa::kScalar)
          .lora_dy(dxa_s.data(), ldxa, db_s.data(), r, dy.data(), lddy, b.data(), xa.data(), ldx, m, n, r, s);
      ASSERT_EQ(dxa, dxa_s) << "r " << r << " m " << m;
      ASSERT_EQ(db, db_s) << "r " << r << " m " << m;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Kernels, ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                         [](const auto& p) { return std::string(isa_name(p.param)); });

TEST(Blas, SgemmMatchesNaiveForAllTransposes) {
  const int m = 33, n = 47, kk = 29;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      auto a = randn(static_cast<size_t>(m * kk), 20), b = randn(static_cast<size_t>(kk * n), 21);
      std::vector<float> c1(static_cast<size_t>(m * n), 1.0f), c2 = c1;
      int lda = ta ? m : kk, ldb = tb ? kk : n;
      sgemm(ta, tb, m, n, kk, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c1.data(), n);
      sgemm_naive(ta, tb, m, n, kk, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c2.data(), n);
      for (size_t i = 0; i < c1.size(); ++i) EXPECT_NEAR(c1[i], c2[i], 1e-4) << ta << tb;
    }
  }
}

TEST(Blas, SgemvMatchesNaive) {
  const int m = 37, n = 83, lda = 90;
  auto a = randn(static_cast<size_t>(m * lda), 11), x = randn(static_cast<size_t>(n), 12);
  std::vector<float> y(static_cast<size_t>(m), 5.0f), ref(y.size());
  sgemv(m, n, a.data(), lda, x.data(), y.data());
  sgemm_naive(false, true, 1, m, n, 1.0f, x.data(), n, a.data(), lda, 0.0f, ref.data(), m);
  for (int i = 0; i < m; ++i) EXPECT_NEAR(y[static_cast<size_t>(i)], ref[static_cast<size_t>(i)], 1e-4) << i;
}

TEST(Blas, LoadsOpenBlasOnItsFastKernels) {
  const BlasInfo& info = blas_info();
  ASSERT_NE(info.library, "builtin") << "OpenBLAS not found; install libopenblas-openmp-dev";
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  if (user && *user) {
    EXPECT_EQ(strcasecmp(info.core.c_str(), user), 0) << info.core << ": the user's OPENBLAS_CORETYPE is kept";
  } else if (cpu_supports(Isa::kAvx512)) {
    EXPECT_EQ(info.core, "SkylakeX");
  } else if (cpu_supports(Isa::kAvx2)) {
    EXPECT_EQ(info.core, "Haswell");
  }
}

// The test above in a child process under a given environment; returns its exit status and output.
int run_core_test(const std::string& env, std::string* output) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return -1;
  self[n] = 0;
  auto [code, out] =
      test::run_command("env " + env + " '" + self + "' --gtest_filter=Blas.LoadsOpenBlasOnItsFastKernels 2>&1");
  *output = out;
  return code;
}

// Whatever the environment this suite runs in (one machine here exported OPENBLAS_CORETYPE=Haswell on an
// AVX-512 CPU): with it unset we pick the fast family; a slower one the user sets is kept, with a warning.
TEST(Blas, PicksTheFamilyUnlessTheUserDidAndWarnsWhenTheirsIsSlower) {
  std::string out;
  EXPECT_EQ(run_core_test("-u OPENBLAS_CORETYPE", &out), 0) << out;
  EXPECT_EQ(out.find("warning:"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_core_test("OPENBLAS_CORETYPE=Haswell", &out), 0) << out;
  const bool warned = out.find("warning: OPENBLAS_CORETYPE=Haswell is set") != std::string::npos;
  EXPECT_EQ(warned, cpu_supports(Isa::kAvx512)) << out;
}

TEST(Rope, RotateHalfConvention) {
  // One head of D=4 at position 1 with inv_freq {1, 0.5}: pairs (x0, x2) and (x1, x3) rotate.
  std::vector<float> x = {1, 2, 3, 4};
  float inv[2] = {1.0f, 0.5f};
  int32_t pos = 1;
  rope_forward(x.data(), 1, 4, 1, 4, &pos, inv);
  EXPECT_NEAR(x[0], 1 * std::cos(1.0) - 3 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[2], 3 * std::cos(1.0) + 1 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[1], 2 * std::cos(0.5) - 4 * std::sin(0.5), 1e-6);
  EXPECT_NEAR(x[3], 4 * std::cos(0.5) + 2 * std::sin(0.5), 1e-6);
}

// The inverse is the transpose rotation: applied after the forward it gives the input back, on enough
// rows (40) that both run split across the thread pool.
TEST(Rope, InverseUndoesForward) {
  const int64_t rows = 40, heads = 3, dim = 8, stride = heads * dim + 5;
  std::vector<int32_t> pos(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) pos[static_cast<size_t>(r)] = static_cast<int32_t>(7 * r);
  const float inv[4] = {1.0f, 0.3f, 0.01f, 0.001f};
  const RopeTable t = rope_table(pos.data(), rows, inv, dim);
  auto x = randn(static_cast<size_t>(rows * stride), 51);
  const auto x0 = x;
  rope_apply(x.data(), rows, stride, heads, dim, t);
  EXPECT_NE(x, x0);
  rope_apply_inverse(x.data(), rows, stride, heads, dim, t);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], x0[i], 1e-5) << i;
}

TEST(ThreadPool, CoversRangeExactlyOnce) {
  ThreadPool pool(3);
  std::vector<int> hits(1000, 0);
  for (int rep = 0; rep < 50; ++rep) {
    pool.parallel_for(1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
  }
  for (int h : hits) EXPECT_EQ(h, 50);
}

}  // namespace
}  // namespace tl
