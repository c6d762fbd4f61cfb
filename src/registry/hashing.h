// Hashing and random identifiers for the registry: sha256 (file contents, API keys, artifact paths)
// and unguessable ids / API keys from the kernel's CSPRNG.
//
// Usage:
//   std::string hex = tl::registry::sha256_hex("hello");
//   TL_ASSIGN_OR_RETURN(std::string hex, tl::registry::sha256_file("data.jsonl"));
//   std::string key = tl::registry::random_token("tl-", 24);   // "tl-" + 48 hex chars
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace tl::registry {

// Lower-case hex sha256 of `data`.
std::string sha256_hex(std::string_view data);
// Streams a file through sha256; errors name the path.
Result<std::string> sha256_file(const std::string& path);
// Incremental sha256 for data that arrives in pieces (uploads, copies).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string finish_hex();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL headers stay out of callers
};
// `prefix` + 2*bytes hex characters from getrandom(2).
std::string random_token(std::string_view prefix, size_t bytes);

}  // namespace tl::registry
