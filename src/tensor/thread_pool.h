// ThreadPool: data-parallel loops for our kernels, run on the same OpenMP team as OpenBLAS.
//
// Why OpenMP and not threads of our own: Debian's OpenMP build of OpenBLAS runs every sgemm on libgomp's
// team. With a second set of workers, the two sets take turns on the cores: on 2 cores a spinning
// worker of ours starves one of OpenBLAS's threads, whose partner then spins in sched_yield, and a
// training step spent a quarter of its time in the scheduler. Sharing one team means one runnable
// thread per core whichever library is computing, and a team that stays warm between back-to-back
// kernels and GEMMs (libgomp spins briefly before sleeping).
//
// parallel_for splits [0, n) into chunks claimed dynamically (an atomic cursor), so uneven work such as
// causal attention rows balances itself. The calling thread works too. Called from inside a parallel
// region it runs serially in the caller (no nested teams).
//
// Usage:
//   tl::ThreadPool& pool = tl::ThreadPool::global();   // TUNELOOP_THREADS or the CPU count
//   pool.parallel_for(rows, [&](int64_t begin, int64_t end) { ... });
#pragma once

#include <cstdint>
#include <functional>

namespace tl {

// Loops with less work than this (in elements touched) should run on the caller: a parallel region
// wakes the team, and with another process on the cores it also waits until both threads are scheduled
// at once, which made tiny models train an order of magnitude slower under load.
inline constexpr int64_t kMinParallelWork = 32768;

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  static ThreadPool& global();

  int size() const { return threads_; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n); chunks are at least `min_chunk` long.
  // fn must not throw.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

 private:
  int threads_;
};

// parallel_for over `rows` items of `width` elements each, on the caller when rows * width is below
// kMinParallelWork.
inline void parallel_rows(int64_t rows, int64_t width, const std::function<void(int64_t, int64_t)>& fn,
                          int64_t min_chunk = 8) {
  if (rows * width < kMinParallelWork) return fn(0, rows);
  ThreadPool::global().parallel_for(rows, fn, min_chunk);
}

}  // namespace tl
