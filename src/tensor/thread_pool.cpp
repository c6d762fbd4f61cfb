#include "tensor/thread_pool.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

#include "core/env.h"

namespace tl {

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(configured_thread_count());
  return pool;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  const int threads = threads_;
  if (threads == 1 || n <= min_chunk || omp_in_parallel()) {
    fn(0, n);
    return;
  }
  // Several chunks per thread so dynamic claiming can even out uneven rows.
  const int64_t chunk = std::max<int64_t>(min_chunk, (n + threads * 4 - 1) / (threads * 4));
  std::atomic<int64_t> cursor{0};
#pragma omp parallel num_threads(threads)
  {
    for (;;) {
      const int64_t begin = cursor.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) break;
      fn(begin, std::min(n, begin + chunk));
    }
  }
}

}  // namespace tl
