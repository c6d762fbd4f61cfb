// The content-addressed artifact store: every uploaded dataset, adapter and exported file lives on
// disk at ROOT/sha256/ab/cdef… (the first two hex digits fan out the directory), written atomically
// (temp file + fsync + rename), so identical content is stored once, a reader never sees half a file,
// and the path itself proves the content.
//
// Usage:
//   ArtifactStore store("/var/lib/tuneloop/artifacts");
//   TL_ASSIGN_OR_RETURN(std::string hash, store.put(bytes));
//   std::string path = store.path_for(hash);            // readable as long as the store exists
//   TL_ASSIGN_OR_RETURN(std::string hash2, store.put_file("/tmp/adapter.safetensors"));
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace tl::registry {

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string root) : root_(std::move(root)) {}

  // Stores `data`; returns its sha256. Storing existing content is a no-op.
  Result<std::string> put(std::string_view data);
  // Copies a file into the store (streamed: hashed while copied to a temp file, then renamed).
  Result<std::string> put_file(const std::string& path);
  bool contains(const std::string& sha256) const;
  std::string path_for(const std::string& sha256) const;
  // Re-hashes the stored bytes; kDataLoss if they no longer match their name.
  Status verify(const std::string& sha256) const;
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

}  // namespace tl::registry
