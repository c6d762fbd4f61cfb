// The scalar instantiation of the kernel bodies in detail/simd_impl.h (compiled with its own -m flags).
#define TL_ISA_SCALAR 1
#include "tensor/detail/simd_impl.h"

namespace tl::detail {
const KernelTable& kernel_table_scalar() { return kTable; }
}  // namespace tl::detail
