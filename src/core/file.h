// Files: whole-file reads, atomic writes (temp file + fsync + rename, so a reader never sees a
// half-written output and a crash leaves the old file intact), and read-only memory maps.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(std::string text, tl::read_file("config.json"));
//   TL_TRY(tl::write_file_atomic("out.json", text));
//   TL_ASSIGN_OR_RETURN(tl::MappedFile map, tl::MappedFile::open("model.safetensors"));
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tl {

Result<std::string> read_file(const std::string& path);
Status write_file_atomic(const std::string& path, std::string_view data);
bool file_exists(const std::string& path);

// Drops the resident pages of a read-only file mapping in [p, p + n) (whole pages inside the range only),
// so memory that was read once (weights being quantised) stops counting; later reads fault them back in.
void release_mapped_pages(const void* p, size_t n);
bool is_directory(const std::string& path);

// Streams bytes to `path + ".tmp.<pid>"`; commit() fsyncs and renames over `path`. Destroying an
// uncommitted AtomicFile removes the temp file, so failures leave nothing behind.
class AtomicFile {
 public:
  static Result<AtomicFile> create(const std::string& path);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();

  Status write(const void* data, size_t size);
  Status commit();

 private:
  AtomicFile(std::string path, std::string tmp_path, int fd)
      : path_(std::move(path)), tmp_path_(std::move(tmp_path)), fd_(fd) {}
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
};

// A read-only, private memory map of a whole file. Empty files map to an empty span.
class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tl
