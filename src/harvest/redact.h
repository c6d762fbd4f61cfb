// Anonymisation: everything harvest writes (graph.sqlite, examples, report) is built from file text that
// went through Redactor::redact first, so secrets and personal data never reach disk.
//
// What is replaced, and with what (line structure is always preserved, so graph line numbers stay valid):
//   secret       provider key patterns (AWS, GitHub, GitLab, Slack, Stripe, OpenAI, Anthropic, Google,
//                SendGrid, npm, Twilio, JWT), credentials inside URLs, and high-entropy string values
//                assigned to secret-looking names (password, token, api_key, …)  → REDACTED_SECRET
//   private_key  -----BEGIN … PRIVATE KEY----- blocks                             → REDACTED_PRIVATE_KEY
//   email        local@domain.tld                                             → user_<hash>@example.invalid
//   ip           IPv4 addresses other than loopback/unspecified/broadcast          → 192.0.2.0 (TEST-NET-1)
//                IPv6 addresses other than ::1, ::, 2001:db8::/32 (documentation)   → 2001:db8:: (RFC 3849)
//   home_dir     /home/NAME, /Users/NAME, C:\Users\NAME                         → /home/user_<hash>
//   username     names from home dirs seen earlier plus configured usernames, as whole words
//                                                                               → user_<hash>
//   git_remote   git@host:org/repo(.git), ssh://…, https://…/repo.git, GitHub/GitLab/Bitbucket repo
//                URLs                                                           → REDACTED_GIT_REMOTE
// <hash> is a stable salted hash (same input and salt → same output across runs), so references to the
// same person stay linked without revealing who it is.
//
// Usage:
//   tl::harvest::Redactor r({.salt = "s3cret-salt"});
//   tl::harvest::RedactionCounts counts;
//   std::string clean = r.redact(text, &counts);
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tl::harvest {

enum class RedactionKind : int { kSecret, kPrivateKey, kEmail, kIp, kHomeDir, kUsername, kGitRemote, kCount };
const char* redaction_kind_name(RedactionKind kind);

struct RedactionCounts {
  std::array<int64_t, static_cast<size_t>(RedactionKind::kCount)> n{};
  void add(RedactionKind k, int64_t c = 1) { n[static_cast<size_t>(k)] += c; }
  int64_t get(RedactionKind k) const { return n[static_cast<size_t>(k)]; }
  int64_t total() const;
  void merge(const RedactionCounts& other);
};

struct RedactOptions {
  std::string salt = "tuneloop-harvest";
  // Extra usernames to replace wherever they appear as whole words (e.g. from the git author list).
  std::vector<std::string> usernames;
  // Minimum Shannon entropy (bits/char) for a value assigned to a secret-looking name to count as a
  // secret when it matches no provider pattern.
  double min_entropy = 3.0;
};

class Redactor {
 public:
  explicit Redactor(RedactOptions options = {});
  // Returns `text` with every finding replaced; `counts` (may be null) gets one per replacement.
  std::string redact(std::string_view text, RedactionCounts* counts) const;
  // Same, and appends to `home_users` (may be null) the usernames seen in home directories of `text`
  // (not generic ones like "user" or "runner"), for the repo-wide username pass.
  std::string redact(std::string_view text, RedactionCounts* counts, std::vector<std::string>* home_users) const;
  const RedactOptions& options() const { return options_; }
  // "user_" + 8 hex digits of a salted 64-bit hash.
  std::string hash_name(std::string_view name) const;

 private:
  RedactOptions options_;
};

// Shannon entropy in bits per character of `s` (0 for empty).
double shannon_entropy(std::string_view s);

}  // namespace tl::harvest
