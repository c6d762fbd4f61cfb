#include "core/env.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace tl {


int configured_thread_count() {
  if (const char* s = std::getenv("TUNELOOP_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(s, &end, 10);
    if (end != s && *end == '\0' && n > 0 && n <= 1024) return static_cast<int>(n);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

void keep_freed_memory() {
  // 32 MiB is glibc's largest mmap threshold on 64-bit: anything smaller comes from the heap, and the
  // heap is never trimmed.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, -1);
}

void ensure_openmp_defaults(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  setenv("GOMP_SPINCOUNT", "10000", 1);
  execv("/proc/self/exe", argv);
  // No /proc or exec refused: carry on with libgomp's defaults (slower neighbours, same results).
}

}  // namespace tl
