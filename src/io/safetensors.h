// safetensors: the checkpoint format of Hugging Face models.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// optional "__metadata__" (string -> string), then the data region. Reading maps the file and validates
// everything before any tensor is touched: the header fits the file, offsets are inside the data region
// and match dtype x shape, and no two tensors overlap. Tensors come back as views into the mapping (or as
// copies when an f32 tensor is misaligned), so loading a model costs no copy.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(auto file, tl::safetensors::File::open("model.safetensors"));
//   TL_ASSIGN_OR_RETURN(tl::Tensor w, file.tensor("lm_head.weight"));
//   TL_TRY(tl::safetensors::write("out.safetensors", {{"logits", &logits}}, {}));
//
// Tensors of other dtypes (U8 for packed NF4, I64, ...) travel as RawTensor: the dtype as written, the
// shape, and the little-endian bytes, read with File::raw and written with write_raw.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "tensor/tensor.h"

namespace tl::safetensors {

struct TensorInfo {
  std::string name;
  std::string dtype;           // as written: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;          // offsets relative to the start of the data region
  uint64_t end = 0;
};

// Any tensor as bytes. `bytes` points into a mapping (from File::raw, kept alive by `keepalive`) or into
// memory the writer's caller owns.
struct RawTensor {
  std::string dtype;  // safetensors spelling: "U8", "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
  std::shared_ptr<const void> keepalive;
};

// Bytes per element of a safetensors dtype name; 0 when the name is not one.
int64_t dtype_element_size(const std::string& dtype);

struct Header {
  std::vector<TensorInfo> tensors;  // in file order of data offsets
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;          // 8 + N
};

// Parses and validates the header of a whole file's bytes. `origin` names the file in messages.
Result<Header> parse_header(std::span<const uint8_t> bytes, const std::string& origin);

class File {
 public:
  static Result<File> open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(const std::string& name) const;
  // A float tensor (F32, BF16, F16) as a view into the mapping; other dtypes are an error naming them.
  Result<Tensor> tensor(const std::string& name) const;
  // Any dtype, as a view of its bytes in the mapping (no alignment needed, no conversion).
  Result<RawTensor> raw(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<MappedFile> map_;
  Header header_;
  std::map<std::string, size_t> index_;
};

// Writes tensors (any of F32/BF16/F16) atomically: a temp file renamed over `path` once complete.
Status write(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
             const std::map<std::string, std::string>& metadata);
// Writes tensors of any dtype, atomically, in the order given. Each entry's byte count must match its
// dtype x shape (an invalid_argument naming the tensor otherwise), as must the dtype name.
Status write_raw(const std::string& path, const std::vector<std::pair<std::string, RawTensor>>& tensors,
                 const std::map<std::string, std::string>& metadata);

// The weights of a model directory: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json` ({"weight_map": {tensor: shard file}}).
class ShardedFiles {
 public:
  static Result<ShardedFiles> open(const std::string& dir);
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  Result<Tensor> tensor(const std::string& name) const;
  Result<RawTensor> raw(const std::string& name) const;
  std::vector<std::string> names() const;
  size_t shard_count() const { return files_.size(); }
  // dtype of the first floating tensor, e.g. "BF16"
  std::string dominant_dtype() const;

 private:
  std::vector<File> files_;
  std::map<std::string, size_t> where_;
};

}  // namespace tl::safetensors
