// sgemm through OpenBLAS, loaded at run time.
//
// Why dlopen and not a link: this CPU reports no model name, so OpenBLAS's dynamic dispatch picks its
// `Prescott` kernels (~60 GFLOP/s) unless OPENBLAS_CORETYPE is set before the library initialises;
// setenv() in main() is too late for a linked library. We set OPENBLAS_CORETYPE (when the user has not,
// from the CPU features we detect; a user's slower choice on an AVX-512 CPU is kept, with a warning) and
// only then dlopen Debian's OpenMP build of OpenBLAS, so a plain `tuneloop` run ends on the AVX-512
// kernels. If no OpenBLAS is installed, a portable blocked sgemm
// runs instead (slow, correct) and blas_info() says so.
#pragma once

#include <string>

namespace tl {

struct BlasInfo {
  std::string library;   // path that was loaded, or "builtin"
  std::string core;      // OpenBLAS's kernel family ("SkylakeX", "Haswell", ...) or "builtin"
  int threads = 1;
};

// The OpenBLAS kernel family this CPU can run at its best: "SKYLAKEX" with AVX-512 (F, BW, VL),
// "HASWELL" with AVX2+FMA (also what OpenBLAS's own ZEN family runs), else nullptr (leave it to
// OpenBLAS). The benchmarks force their PyTorch reference onto the same: forcing SKYLAKEX on a CPU
// without AVX-512 kills the process with SIGILL.
const char* openblas_coretype_for_cpu();

// Loads the library on first use; thread-safe.
const BlasInfo& blas_info();

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, op = transpose when trans_*.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc);

// y (m) = A (m, n; rows lda apart) x: OpenBLAS's GEMV (the benchmarks' reference for one-token GEMMs).
void sgemv(int m, int n, const float* a, int lda, const float* x, float* y);

// Reference triple loop (for tests of the fast paths).
void sgemm_naive(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);

}  // namespace tl
