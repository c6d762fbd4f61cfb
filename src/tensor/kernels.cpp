// Run-time selection of the kernel table.
#include "tensor/kernels.h"

#include <cstdlib>
#include <cstring>

namespace tl {
namespace detail {
const KernelTable& kernel_table_scalar();
const KernelTable& kernel_table_avx2();
const KernelTable& kernel_table_avx512();
}  // namespace detail

bool cpu_supports(Isa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  }
#endif
  return isa == Isa::kScalar;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

const KernelTable& kernels_for(Isa isa) {
  if (!cpu_supports(isa)) isa = Isa::kScalar;
  switch (isa) {
    case Isa::kAvx512: return detail::kernel_table_avx512();
    case Isa::kAvx2: return detail::kernel_table_avx2();
    case Isa::kScalar: break;
  }
  return detail::kernel_table_scalar();
}

Isa active_isa() {
  static const Isa isa = [] {
    if (const char* e = std::getenv("TUNELOOP_ISA")) {
      if (!std::strcmp(e, "scalar")) return Isa::kScalar;
      if (!std::strcmp(e, "avx2") && cpu_supports(Isa::kAvx2)) return Isa::kAvx2;
      if (!std::strcmp(e, "avx512") && cpu_supports(Isa::kAvx512)) return Isa::kAvx512;
    }
    if (cpu_supports(Isa::kAvx512)) return Isa::kAvx512;
    if (cpu_supports(Isa::kAvx2)) return Isa::kAvx2;
    return Isa::kScalar;
  }();
  return isa;
}

const KernelTable& kernels() {
  static const KernelTable& table = kernels_for(active_isa());
  return table;
}

}  // namespace tl
