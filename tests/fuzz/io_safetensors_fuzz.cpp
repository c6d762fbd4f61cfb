// libFuzzer target: arbitrary bytes as a safetensors file. The header parser must return a Status for
// every input — never crash, hang or read outside the buffer (ASan checks that).
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = tl::safetensors::parse_header(std::span<const uint8_t>(data, size), "fuzz.safetensors");
  if (header.is_ok()) {
    // Every accepted tensor must lie inside the buffer.
    for (const auto& t : header->tensors) {
      if (header->data_start + t.end > size) __builtin_trap();
    }
  }
  return 0;
}
