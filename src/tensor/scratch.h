// Scratch vectors that are not zero-filled on allocation. Most scratch in a forward or backward pass is
// written whole by a GEMM or a kernel before it is read, and the memset of a few MB per layer was
// measurable; zeros() is for accumulators.
//
// Usage:
//   tl::Scratch qkv = tl::uninit(tokens * width);   // every element written before it is read
//   tl::Scratch grad = tl::zeros(n);                // summed into
#pragma once

#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace tl {

template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  using std::allocator<T>::allocator;
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
};

using Scratch = std::vector<float, DefaultInitAllocator<float>>;

inline Scratch zeros(int64_t n) { return Scratch(static_cast<size_t>(n), 0.0f); }
inline Scratch uninit(int64_t n) { return Scratch(static_cast<size_t>(n)); }

}  // namespace tl
