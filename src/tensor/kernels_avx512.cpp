// The avx512 instantiation of the kernel bodies in detail/simd_impl.h (compiled with its own -m flags).
#define TL_ISA_AVX512 1
// GCC 12's avx512fintrin.h reads a deliberately undefined register in _mm512_castps512_ps256 and then
// warns about it at every inlined use (GCC bug 105593, fixed in 13): silence only that, only here.
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "tensor/detail/simd_impl.h"

namespace tl::detail {
const KernelTable& kernel_table_avx512() { return kTable; }
}  // namespace tl::detail
