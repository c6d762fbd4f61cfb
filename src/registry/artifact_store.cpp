// Content-addressed store on disk. Writes go to a temp file in the final directory (same filesystem,
// so rename is atomic), are fsynced, then renamed into place; an existing target is left alone because
// equal names mean equal bytes.
#include "registry/artifact_store.h"

#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "registry/hashing.h"

namespace tl::registry {
namespace fs = std::filesystem;

std::string ArtifactStore::path_for(const std::string& sha256) const {
  return root_ + "/sha256/" + sha256.substr(0, 2) + "/" + sha256.substr(2);
}

bool ArtifactStore::contains(const std::string& sha256) const { return file_exists(path_for(sha256)); }

Result<std::string> ArtifactStore::put(std::string_view data) {
  std::string hash = sha256_hex(data);
  std::string path = path_for(hash);
  if (file_exists(path)) return hash;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return io_error("{}: cannot create artifact directory: {}", fs::path(path).parent_path().string(), ec.message());
  TL_TRY(write_file_atomic(path, data));
  return hash;
}

Result<std::string> ArtifactStore::put_file(const std::string& src) {
  std::ifstream in(src, std::ios::binary);
  if (!in) return io_error("{}: cannot open to store as an artifact", src);
  std::error_code ec;
  fs::create_directories(root_ + "/tmp", ec);
  if (ec) return io_error("{}/tmp: cannot create: {}", root_, ec.message());
  // Hash while copying into a temp file; the final name is known only at the end.
  std::string staging = root_ + "/tmp/" + random_token("put-", 8);
  TL_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::create(staging));
  Sha256 h;
  std::string buf(1 << 16, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    h.update(std::string_view(buf.data(), n));
    TL_TRY(out.write(buf.data(), n));
  }
  if (in.bad()) return io_error("{}: read error while storing", src);
  TL_TRY(out.commit());
  std::string hash = h.finish_hex();
  std::string path = path_for(hash);
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return io_error("{}: cannot create artifact directory: {}", fs::path(path).parent_path().string(), ec.message());
  if (file_exists(path)) {
    fs::remove(staging, ec);
  } else {
    fs::rename(staging, path, ec);
    if (ec) return io_error("{}: cannot move into the artifact store: {}", path, ec.message());
  }
  return hash;
}

Status ArtifactStore::verify(const std::string& sha256) const {
  TL_ASSIGN_OR_RETURN(std::string actual, sha256_file(path_for(sha256)));
  if (actual != sha256)
    return data_loss("artifact {}: stored bytes hash to {} (corrupted on disk)", path_for(sha256), actual);
  return Status::ok();
}

}  // namespace tl::registry
