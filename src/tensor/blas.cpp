#include "tensor/blas.h"

#include <dlfcn.h>
#include <strings.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/env.h"

namespace tl {

namespace {

// cblas enums, as in cblas.h; we do not include the header to avoid a build dependency on one BLAS.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                         int);
using SgemvFn = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using SetThreadsFn = void (*)(int);
using CorenameFn = char* (*)();
using GetThreadsFn = int (*)();

// OpenBLAS's families built on AVX-512 kernels (its names, any case).
bool is_avx512_family(const char* name) {
  for (const char* f : {"SKYLAKEX", "COOPERLAKE", "SAPPHIRERAPIDS"})
    if (!strcasecmp(name, f)) return true;
  return false;
}

struct Blas {
  SgemmFn sgemm = nullptr;
  SgemvFn sgemv = nullptr;
  BlasInfo info;
};

Blas load() {
  Blas b;
  const char* best = openblas_coretype_for_cpu();
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  const bool user_set = user && *user;
  if (!user_set && best) setenv("OPENBLAS_CORETYPE", best, 1);
  // No OMP_WAIT_POLICY here: libgomp is linked into the binary (ThreadPool runs on its team), so it has
  // read the environment before main, and an active team is what back-to-back GEMMs and kernels want.
  const char* candidates[] = {
      "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
      "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
      "libopenblas.so.0",
  };
  for (const char* path : candidates) {
    void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    auto fn = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
    if (!fn) continue;
    b.sgemm = fn;
    b.sgemv = reinterpret_cast<SgemvFn>(dlsym(h, "cblas_sgemv"));
    b.info.library = path;
    int threads = configured_thread_count();
    if (auto set = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"))) set(threads);
    if (auto get = reinterpret_cast<GetThreadsFn>(dlsym(h, "openblas_get_num_threads"))) threads = get();
    b.info.threads = threads;
    auto core = reinterpret_cast<CorenameFn>(dlsym(h, "openblas_get_corename"));
    b.info.core = core ? core() : "unknown";
    if (user_set && best && !std::strcmp(best, "SKYLAKEX") && !is_avx512_family(b.info.core.c_str())) {
      // Honoured, as the user asked; but a shell or image that exports a slower family (seen: Haswell on
      // an AVX-512 machine, half the sgemm rate) would otherwise cost every run silently. Judged by the
      // family OpenBLAS took: a name it does not know falls back to its own detection.
      std::fprintf(stderr,
                   "warning: OPENBLAS_CORETYPE=%s is set, so OpenBLAS runs its %s kernels; this CPU can run its "
                   "faster SKYLAKEX (AVX-512) kernels: unset OPENBLAS_CORETYPE to use them\n",
                   user, b.info.core.c_str());
    }
    return b;
  }
  b.info.library = "builtin";
  b.info.core = "builtin";
  return b;
}

const Blas& blas() {
  static Blas b = load();
  return b;
}

}  // namespace

const char* openblas_coretype_for_cpu() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return "SKYLAKEX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "HASWELL";
#endif
  return nullptr;
}

const BlasInfo& blas_info() { return blas().info; }

void sgemm_naive(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int p = 0; p < k; ++p) {
        float av = trans_a ? a[p * lda + i] : a[i * lda + p];
        float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        acc += static_cast<double>(av) * bv;
      }
      float prev = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
      c[i * ldc + j] = static_cast<float>(alpha * acc) + prev;
    }
  }
}

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc) {
  if (m == 0 || n == 0) return;
  const Blas& bl = blas();
  if (bl.sgemm) {
    bl.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, m, n, k, alpha, a, lda, b, ldb,
             beta, c, ldc);
    return;
  }
  sgemm_naive(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sgemv(int m, int n, const float* a, int lda, const float* x, float* y) {
  const Blas& bl = blas();
  if (bl.sgemv) {
    bl.sgemv(kRowMajor, kNoTrans, m, n, 1.0f, a, lda, x, 1, 0.0f, y, 1);
    return;
  }
  sgemm_naive(false, true, 1, m, n, 1.0f, x, n, a, lda, 0.0f, y, m);
}

}  // namespace tl
