#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/check.h"

namespace tl::safetensors {

namespace {

using json = nlohmann::json;

// Headers over this size are refused before parsing (real ones are a few hundred KB at most).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

}  // namespace

int64_t dtype_element_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2},
      {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"F64", 8}, {"I64", 8}, {"U64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

Result<Header> parse_header(std::span<const uint8_t> bytes, const std::string& origin) {
  if (bytes.size() < 8) {
    return data_loss("{}: file is {} bytes, too short for a safetensors header (needs at least 8)", origin,
                     bytes.size());
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  if (n > kMaxHeaderBytes) {
    return data_loss("{}: header length {} exceeds the {} byte limit (not a safetensors file?)", origin, n,
                     kMaxHeaderBytes);
  }
  if (n > bytes.size() - 8) {
    return data_loss("{}: header length {} is larger than the file ({} bytes after the length prefix)", origin, n,
                     bytes.size() - 8);
  }
  Header h;
  h.data_start = 8 + n;
  const uint64_t data_size = bytes.size() - h.data_start;
  json j = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), nullptr, false);
  if (j.is_discarded()) return data_loss("{}: header is not valid JSON", origin);
  if (!j.is_object()) return data_loss("{}: header must be a JSON object", origin);

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return data_loss("{}: __metadata__ must be an object of strings", origin);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) return data_loss("{}: __metadata__.{} must be a string", origin, m.key());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) return data_loss("{}: tensor '{}': entry must be an object", origin, name);
    TensorInfo t;
    t.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) return data_loss("{}: tensor '{}': missing string 'dtype'", origin, name);
    t.dtype = dt->get<std::string>();
    int64_t esize = dtype_element_size(t.dtype);
    if (esize == 0) return data_loss("{}: tensor '{}': unknown dtype '{}'", origin, name, t.dtype);
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) return data_loss("{}: tensor '{}': missing array 'shape'", origin, name);
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned()) {
        return data_loss("{}: tensor '{}': shape must hold non-negative integers", origin, name);
      }
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > (1ull << 62) / dim) {
        return data_loss("{}: tensor '{}': shape {} overflows", origin, name, sh->dump());
      }
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      return data_loss("{}: tensor '{}': data_offsets must be [begin, end] non-negative integers", origin, name);
    }
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.begin > t.end || t.end > data_size) {
      return data_loss("{}: tensor '{}': data_offsets [{}, {}] outside the data region of {} bytes (truncated file?)",
                       origin, name, t.begin, t.end, data_size);
    }
    if (t.end - t.begin != numel * static_cast<uint64_t>(esize)) {
      return data_loss("{}: tensor '{}': {} bytes in data_offsets but dtype {} x shape {} needs {}", origin, name,
                       t.end - t.begin, t.dtype, sh->dump(), numel * static_cast<uint64_t>(esize));
    }
    h.tensors.push_back(std::move(t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    const TensorInfo& prev = h.tensors[i - 1];
    const TensorInfo& cur = h.tensors[i];
    if (cur.begin < prev.end && cur.end > cur.begin) {
      return data_loss("{}: tensors '{}' and '{}' overlap in the data region", origin, prev.name, cur.name);
    }
  }
  return h;
}

Result<File> File::open(const std::string& path) {
  TL_ASSIGN_OR_RETURN(MappedFile m, MappedFile::open(path));
  File f;
  f.path_ = path;
  f.map_ = std::make_shared<MappedFile>(std::move(m));
  TL_ASSIGN_OR_RETURN(f.header_, parse_header(f.map_->bytes(), path));
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.index_[f.header_.tensors[i].name] = i;
  return f;
}

const TensorInfo* File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

Result<Tensor> File::tensor(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) return not_found("{}: no tensor '{}'", path_, name);
  auto dt = dtype_from_name(info->dtype);
  if (!dt) return unimplemented("{}: tensor '{}' has dtype {}, expected F32, BF16 or F16", path_, name, info->dtype);
  const uint8_t* p = map_->bytes().data() + header_.data_start + info->begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(*dt) != 0) {
    // Misaligned data (legal in the format): copy rather than hand out an unaligned pointer.
    Tensor t = Tensor::zeros(*dt, info->shape);
    std::memcpy(t.mutable_data(), p, t.nbytes());
    return t;
  }
  return Tensor::view(*dt, info->shape, p, map_);
}

Result<RawTensor> File::raw(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) return not_found("{}: no tensor '{}'", path_, name);
  const uint8_t* p = map_->bytes().data() + header_.data_start + info->begin;
  return RawTensor{info->dtype, info->shape, {p, static_cast<size_t>(info->end - info->begin)}, map_};
}

Status write(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
             const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, RawTensor>> raw;
  raw.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    TL_CHECK(t != nullptr);
    raw.emplace_back(name, RawTensor{dtype_name(t->dtype()), t->shape(),
                                     {static_cast<const uint8_t*>(t->data()), t->nbytes()}, nullptr});
  }
  return write_raw(path, raw, metadata);
}

Status write_raw(const std::string& path, const std::vector<std::pair<std::string, RawTensor>>& tensors,
                 const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (header.contains(name)) return invalid_argument("{}: duplicate tensor name '{}'", path, name);
    const int64_t esize = dtype_element_size(t.dtype);
    if (esize == 0) return invalid_argument("{}: tensor '{}': unknown dtype '{}'", path, name, t.dtype);
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return invalid_argument("{}: tensor '{}': negative dimension {}", path, name, d);
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * static_cast<uint64_t>(esize) != t.bytes.size()) {
      return invalid_argument("{}: tensor '{}': {} bytes given but dtype {} x {} elements needs {}", path, name,
                              t.bytes.size(), t.dtype, numel, numel * static_cast<uint64_t>(esize));
    }
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  // Pad with spaces so the data region starts 8-byte aligned, as the reference writer does.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  TL_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(path));
  TL_TRY(f.write(len, 8));
  TL_TRY(f.write(text.data(), text.size()));
  for (const auto& [name, t] : tensors) TL_TRY(f.write(t.bytes.data(), t.bytes.size()));
  return f.commit();
}

Result<ShardedFiles> ShardedFiles::open(const std::string& dir) {
  ShardedFiles s;
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (file_exists(index_path)) {
    TL_ASSIGN_OR_RETURN(std::string text, read_file(index_path));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      return data_loss("{}: expected a JSON object with a 'weight_map' object", index_path);
    }
    std::map<std::string, size_t> shard_index;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) return data_loss("{}: weight_map.{} must be a file name", index_path, it.key());
      std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos) {
        return data_loss("{}: weight_map.{}: shard '{}' must be a file in the model directory", index_path, it.key(),
                         shard);
      }
      auto [pos, inserted] = shard_index.emplace(shard, s.files_.size());
      if (inserted) {
        auto f = File::open(dir + "/" + shard);
        if (!f.is_ok()) return f.status().with_context(index_path + " lists shard " + shard);
        s.files_.push_back(std::move(f).value());
      }
      if (!s.files_[pos->second].find(it.key())) {
        return data_loss("{}: tensor '{}' is mapped to {} but that shard does not contain it", index_path, it.key(),
                         shard);
      }
      s.where_[it.key()] = pos->second;
    }
    return s;
  }
  const std::string single = dir + "/model.safetensors";
  if (!file_exists(single)) {
    return not_found("{}: no model.safetensors or model.safetensors.index.json", dir);
  }
  TL_ASSIGN_OR_RETURN(File f, File::open(single));
  for (const auto& t : f.tensors()) s.where_[t.name] = 0;
  s.files_.push_back(std::move(f));
  return s;
}

Result<Tensor> ShardedFiles::tensor(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return not_found("no tensor '{}' in the model's safetensors files", name);
  return files_[it->second].tensor(name);
}

Result<RawTensor> ShardedFiles::raw(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return not_found("no tensor '{}' in the model's safetensors files", name);
  return files_[it->second].raw(name);
}

std::vector<std::string> ShardedFiles::names() const {
  std::vector<std::string> out;
  for (const auto& [n, i] : where_) out.push_back(n);
  return out;
}

std::string ShardedFiles::dominant_dtype() const {
  std::map<std::string, uint64_t> bytes;
  for (const auto& f : files_)
    for (const auto& t : f.tensors()) bytes[t.dtype] += t.end - t.begin;
  std::string best;
  uint64_t most = 0;
  for (const auto& [d, b] : bytes)
    if (b > most) most = b, best = d;
  return best;
}

}  // namespace tl::safetensors
