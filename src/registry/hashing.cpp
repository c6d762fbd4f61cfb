// sha256 via OpenSSL's EVP interface (already on every machine that has cpp-httplib with TLS) and
// random tokens via getrandom(2), which blocks only before the kernel's pool is seeded at boot.
#include "registry/hashing.h"

#include <openssl/evp.h>
#include <sys/random.h>

#include <cstdio>
#include <memory>

#include "core/check.h"

namespace tl::registry {
namespace {

std::string to_hex(const unsigned char* bytes, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  // Allocation failure of a few hundred bytes is not recoverable here.
  TL_CHECK(ctx_ != nullptr);
  TL_CHECK(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) == 1);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(std::string_view data) {
  TL_CHECK(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) == 1);
}
std::string Sha256::finish_hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  TL_CHECK(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest, &len) == 1);
  return to_hex(digest, len);
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish_hex();
}

Result<std::string> sha256_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return io_error("{}: cannot open for hashing", path);
  Sha256 h;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) h.update(std::string_view(buf, n));
  if (std::ferror(f.get())) return io_error("{}: read error while hashing", path);
  return h.finish_hex();
}

std::string random_token(std::string_view prefix, size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t r = getrandom(raw.data() + got, bytes - got, 0);
    // getrandom only fails with EINTR/EAGAIN after boot; retry those, anything else is a broken kernel.
    if (r < 0) continue;
    got += static_cast<size_t>(r);
  }
  return std::string(prefix) + to_hex(reinterpret_cast<const unsigned char*>(raw.data()), bytes);
}

}  // namespace tl::registry
