// ThreadPool: a fixed set of compute workers for data-parallel kernels.
//
// parallel_for splits [0, n) into chunks claimed dynamically (an atomic cursor), so uneven work such as
// causal attention rows balances itself. The calling thread works too. Workers spin briefly before
// sleeping, because kernels are issued back to back and a futex wake costs more than the work of a
// small kernel; the spin is bounded so idle workers do not steal a core from OpenBLAS's threads.
//
// Usage:
//   tl::ThreadPool& pool = tl::ThreadPool::global();   // TUNELOOP_THREADS or the CPU count
//   pool.parallel_for(rows, [&](int64_t begin, int64_t end) { ... });
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tl {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  static ThreadPool& global();

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n); chunks are at least `min_chunk` long.
  // Not re-entrant: fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

 private:
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};
  bool stop_ = false;

  // The current job.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  std::atomic<int64_t> cursor_{0};
};

}  // namespace tl
