// GEMM benchmark: our packed-panel GEMM (tensor/packed.h) against OpenBLAS sgemm on the shapes of the
// bench model (hidden 512, intermediate 1536, 8 + 2 + 2 heads of 64, vocab 32000), as the prefill and
// the training forward run them: y (M, N) = x (M, K) W^T with W (N, K) row-major, M = 512 tokens, and the
// decode GEMV (M = 1) against OpenBLAS's sgemv. Same process, same threads, medians of 9 runs. On a
// CPU with AMX or AVX512-BF16, the bf16 GEMMs of tensor/amx.h (training.precision: bf16) get a column of their own
// (bf16 operands, f32 sums: not the same numbers as the f32 columns).
//
//   build/bench/gemm_bench [--m 512]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "tensor/amx.h"
#include "tensor/blas.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/packed.h"
#include "tensor/thread_pool.h"

#include "reference_process.h"

using namespace tl;
using clk = std::chrono::steady_clock;

namespace {

template <typename F>
double median_seconds(F&& f, int reps = 9) {
  f();
  std::vector<double> r;
  for (int i = 0; i < reps; ++i) {
    auto t = clk::now();
    f();
    r.push_back(std::chrono::duration<double>(clk::now() - t).count());
  }
  std::sort(r.begin(), r.end());
  return r[r.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  use_fastest_openblas_family();
  int64_t m = 512;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--m")) m = std::atoll(argv[++i]);
  const BlasInfo& blas = blas_info();
  std::printf("threads %d, kernels %s, BLAS %s (core %s)\n", ThreadPool::global().size(), isa_name(active_isa()),
              blas.library.c_str(), blas.core.c_str());
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {{"qkv", 768, 512}, {"o", 512, 512}, {"gate_up", 3072, 512}, {"down", 512, 1536},
                          {"head", 32000, 512}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const bool amx = bf16_tiles_available();
  if (!amx) std::printf("no bf16 column: %s\n", bf16_tiles_unavailable_reason().c_str());
  std::printf("%-8s %6s %6s %6s %12s %12s %7s %10s %10s %7s %10s\n", "shape", "M", "N", "K", "OpenBLAS GF/s",
              "packed GF/s", "ratio", "sgemv us", "packed us", "ratio", "bf16 GF/s");
  for (const Shape& s : shapes) {
    std::vector<float> w(static_cast<size_t>(s.n * s.k)), x(static_cast<size_t>(m * s.k)),
        y(static_cast<size_t>(m * s.n));
    for (float& v : w) v = u(rng);
    for (float& v : x) v = u(rng);
    const PackedMatrix pw = PackedMatrix::pack(w.data(), s.n, s.k);
    const double flops = 2.0 * static_cast<double>(m * s.n * s.k);
    const double t_blas = median_seconds([&] {
      sgemm(false, true, static_cast<int>(m), static_cast<int>(s.n), static_cast<int>(s.k), 1.0f, x.data(),
            static_cast<int>(s.k), w.data(), static_cast<int>(s.k), 0.0f, y.data(), static_cast<int>(s.n));
    });
    const double t_pack = median_seconds([&] { packed_gemm(y.data(), s.n, x.data(), s.k, m, pw, nullptr, false); });
    const double t_mv = median_seconds(
        [&] { sgemv(static_cast<int>(s.n), static_cast<int>(s.k), w.data(), static_cast<int>(s.k), x.data(), y.data()); },
        31);
    const double t_pmv = median_seconds([&] { packed_gemm(y.data(), s.n, x.data(), s.k, 1, pw, nullptr, false); }, 31);
    double t_amx = 0;
    if (amx) {
      const AmxMatrix aw = AmxMatrix::pack(w.data(), s.n, s.k);
      t_amx = median_seconds([&] { amx_gemm_xwt(y.data(), s.n, x.data(), s.k, m, aw, nullptr, false); });
    }
    std::printf("%-8s %6lld %6lld %6lld %12.1f %12.1f %6.2fx %10.1f %10.1f %6.2fx %10.1f\n", s.name,
                static_cast<long long>(m), static_cast<long long>(s.n), static_cast<long long>(s.k),
                flops / t_blas / 1e9, flops / t_pack / 1e9, t_blas / t_pack, t_mv * 1e6, t_pmv * 1e6, t_mv / t_pmv,
                amx ? flops / t_amx / 1e9 : 0.0);
  }
  // The input-gradient pass dx (M, K) = dy (M, N) W (N, K): OpenBLAS on W as stored, ours read from the
  // forward's packing of W (32 x 32 blocks transposed into each chunk's panels, tensor/packed.h).
  std::printf("%-8s %6s %6s %6s %12s %12s %7s %10s\n", "dy W", "M", "N", "K", "OpenBLAS GF/s", "ours GF/s", "ratio",
              "bf16 GF/s");
  for (const Shape& s : shapes) {
    std::vector<float> w(static_cast<size_t>(s.n * s.k)), dy(static_cast<size_t>(m * s.n)),
        dx(static_cast<size_t>(m * s.k));
    for (float& v : w) v = u(rng);
    for (float& v : dy) v = u(rng);
    const double flops = 2.0 * static_cast<double>(m * s.n * s.k);
    const double t_blas = median_seconds([&] {
      sgemm(false, false, static_cast<int>(m), static_cast<int>(s.k), static_cast<int>(s.n), 1.0f, dy.data(),
            static_cast<int>(s.n), w.data(), static_cast<int>(s.k), 0.0f, dx.data(), static_cast<int>(s.k));
    });
    const PackedMatrix pw = PackedMatrix::pack(w.data(), s.n, s.k);
    const double t_ours = median_seconds([&] { packed_gemm_dyw(dx.data(), s.k, dy.data(), s.n, m, pw, false); });
    double t_amx = 0;
    if (amx) {
      const AmxMatrix aw = AmxMatrix::pack(w.data(), s.n, s.k);
      t_amx = median_seconds([&] { amx_gemm_dyw(dx.data(), s.k, dy.data(), s.n, m, aw, false); });
    }
    std::printf("%-8s %6lld %6lld %6lld %12.1f %12.1f %6.2fx %10.1f\n", s.name, static_cast<long long>(m),
                static_cast<long long>(s.n), static_cast<long long>(s.k), flops / t_blas / 1e9, flops / t_ours / 1e9,
                t_blas / t_ours, amx ? flops / t_amx / 1e9 : 0.0);
  }
  return 0;
}
