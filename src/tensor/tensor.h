// Tensor: a typed, shaped, contiguous (row-major) block of memory, either owned (64-byte aligned) or a
// view into storage kept alive by someone else (for example a memory-mapped safetensors file).
//
// Usage:
//   tl::Tensor w = tl::Tensor::zeros(tl::DType::kF32, {out, in});
//   float* p = w.f32();                       // checked: dtype must be f32
//   tl::Tensor v = tl::Tensor::view(tl::DType::kBF16, {n}, ptr, keepalive);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace tl {

class Tensor {
 public:
  Tensor() = default;

  static Tensor zeros(DType dtype, std::vector<int64_t> shape);
  // A non-owning view; `keepalive` (may be null) is held for the tensor's lifetime.
  static Tensor view(DType dtype, std::vector<int64_t> shape, const void* data, std::shared_ptr<const void> keepalive);

  bool empty() const { return data_ == nullptr; }
  bool is_view() const { return !owned_; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  std::string shape_string() const;  // "[4, 8]"

  const void* data() const { return data_; }
  // Mutable access is only valid for owned tensors; views are read-only (mmapped pages are PROT_READ).
  void* mutable_data();
  float* f32();
  const float* f32() const;

  // A new owned f32 tensor with the same shape (converting bf16/f16).
  Tensor to_f32() const;

 private:
  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
  std::shared_ptr<const void> storage_;
  const void* data_ = nullptr;
  bool owned_ = false;
};

}  // namespace tl
