#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>

#include "core/check.h"

namespace tl {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape_[i]);
  }
  return s + "]";
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  size_t bytes = t.nbytes();
  size_t padded = (bytes + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  void* p = std::aligned_alloc(64, padded);
  TL_CHECK_MSG(p != nullptr, "out of memory");
  std::memset(p, 0, padded);
  t.storage_ = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  t.data_ = p;
  t.owned_ = true;
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, const void* data, std::shared_ptr<const void> keepalive) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::move(keepalive);
  t.data_ = data;
  t.owned_ = false;
  return t;
}

void* Tensor::mutable_data() {
  // Views may alias read-only mappings; writing through them would fault.
  TL_CHECK_MSG(owned_, "mutable access to a tensor view");
  return const_cast<void*>(data_);
}

float* Tensor::f32() {
  TL_CHECK(dtype_ == DType::kF32);
  return static_cast<float*>(mutable_data());
}

const float* Tensor::f32() const {
  TL_CHECK(dtype_ == DType::kF32);
  return static_cast<const float*>(data_);
}

Tensor Tensor::to_f32() const {
  Tensor out = zeros(DType::kF32, shape_);
  convert_to_f32(out.f32(), data_, dtype_, static_cast<size_t>(numel()));
  return out;
}

}  // namespace tl
