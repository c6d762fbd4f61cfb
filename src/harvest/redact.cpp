// Redactor: finds secrets and personal data in text and replaces them (see redact.h for the list).
//
// Hand-written scanners rather than regexes: redaction runs over every byte harvest reads, inside the
// parse loop, and each pass first looks for a cheap trigger (a '@', "://", "-----BEGIN", a digit at a
// word start) before doing any work. Passes run in a fixed order so that earlier, more specific
// findings shield their text from later, broader ones (a git remote "git@github.com:org/x.git" must not
// be counted as an e-mail address). Replacements never contain a newline, except for private-key
// blocks, which keep their line count, so line numbers in the graph still point at the right lines.
#include "harvest/redact.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <unordered_set>

namespace tl::harvest {

namespace {

struct Span {
  size_t begin, end;
  std::string replacement;
};

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_upper_digit(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_word(char c) { return is_alnum(c) || c == '_'; }
bool is_b64url(char c) { return is_alnum(c) || c == '_' || c == '-'; }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

size_t run(std::string_view s, size_t i, bool (*pred)(char)) {
  size_t j = i;
  while (j < s.size() && pred(s[j])) ++j;
  return j - i;
}

std::string apply_spans(std::string_view in, const std::vector<Span>& spans) {
  std::string out;
  out.reserve(in.size());
  size_t copied = 0;
  for (const auto& s : spans) {
    if (s.begin < copied) continue;  // overlapping: the earlier span already covered it
    out.append(in.substr(copied, s.begin - copied));
    out += s.replacement;
    copied = s.end;
  }
  out.append(in.substr(copied));
  return out;
}

uint64_t hash64(std::string_view salt, std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : salt) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  h = (h ^ 0xffu) * 1099511628211ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

// ---- private keys -------------------------------------------------------------------------------
std::vector<Span> find_private_keys(std::string_view s) {
  std::vector<Span> out;
  size_t pos = 0;
  while ((pos = s.find("-----BEGIN ", pos)) != std::string_view::npos) {
    size_t head_end = s.find("-----", pos + 11);
    if (head_end == std::string_view::npos) break;
    std::string_view label = s.substr(pos + 11, head_end - pos - 11);
    if (label.find("PRIVATE KEY") == std::string_view::npos || label.size() > 40) {
      pos = head_end;
      continue;
    }
    size_t end = s.find("-----END ", head_end);
    size_t stop;
    if (end != std::string_view::npos) {
      size_t tail = s.find("-----", end + 9);
      stop = tail == std::string_view::npos ? s.size() : tail + 5;
    } else {
      size_t blank = s.find("\n\n", head_end);
      stop = blank == std::string_view::npos ? s.size() : blank;
    }
    std::string rep = "REDACTED_PRIVATE_KEY";
    for (size_t i = pos; i < stop; ++i) {
      if (s[i] == '\n') rep += '\n';
    }
    out.push_back({pos, stop, rep});
    pos = stop;
  }
  return out;
}

// ---- provider key patterns ----------------------------------------------------------------------
// Returns the length of a provider token starting at s[i] (i is at a word start), or 0.
size_t match_provider(std::string_view s, size_t i) {
  std::string_view t = s.substr(i);
  auto starts = [&](std::string_view p) { return t.starts_with(p); };
  auto boundary_after = [&](size_t len) { return i + len >= s.size() || !is_alnum(s[i + len]); };
  switch (t[0]) {
    case 'A': {
      // AWS access key ids.
      static const char* kAws[] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "AIPA"};
      for (const char* p : kAws) {
        if (starts(p) && t.size() >= 20 && run(t, 4, is_upper_digit) == 16 && boundary_after(20)) return 20;
      }
      // Google API keys.
      if (starts("AIza") && run(t, 4, is_b64url) >= 35) return 4 + run(t, 4, is_b64url);
      return 0;
    }
    case 'g': {
      if (t.size() > 4 && t[0] == 'g' && t[1] == 'h' && std::strchr("pousr", t[2]) && t[3] == '_') {
        size_t n = run(t, 4, is_alnum);
        if (n >= 30) return 4 + n;
      }
      if (starts("github_pat_")) {
        size_t n = run(t, 11, is_word);
        if (n >= 22) return 11 + n;
      }
      if (starts("glpat-")) {
        size_t n = run(t, 6, is_b64url);
        if (n >= 20) return 6 + n;
      }
      return 0;
    }
    case 'x': {
      if (t.size() > 5 && starts("xox") && std::strchr("abprse", t[3]) && t[4] == '-') {
        size_t n = run(t, 5, is_b64url);
        // Real Slack tokens start with numeric workspace/user ids; "xoxb-your-token" is documentation.
        if (n >= 10 && t[5] >= '0' && t[5] <= '9') return 5 + n;
      }
      return 0;
    }
    case 's':
    case 'r': {
      for (const char* p : {"sk_live_", "rk_live_", "sk_test_", "rk_test_"}) {
        size_t pl = std::strlen(p);
        if (starts(p) && run(t, pl, is_alnum) >= 16) return pl + run(t, pl, is_alnum);
      }
      if (starts("sk-")) {
        size_t n = run(t, 3, is_b64url);
        std::string_view body = t.substr(3, n);
        bool digit = false, letter = false;
        for (char c : body) {
          digit |= c >= '0' && c <= '9';
          letter |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        }
        if (n >= 20 && digit && letter && shannon_entropy(body) >= 3.5) return 3 + n;
      }
      return 0;
    }
    case 'S': {
      // SendGrid: SG.<22>.<43>; Twilio API key: SK + 32 hex.
      if (starts("SG.")) {
        size_t a = run(t, 3, is_b64url);
        if (a >= 16 && t.size() > 3 + a && t[3 + a] == '.') {
          size_t b = run(t, 4 + a, is_b64url);
          if (b >= 30) return 4 + a + b;
        }
      }
      if (starts("SK") && run(t, 2, is_hex) == 32 && boundary_after(34)) return 34;
      return 0;
    }
    case 'n': {
      if (starts("npm_") && run(t, 4, is_alnum) >= 36) return 4 + run(t, 4, is_alnum);
      return 0;
    }
    case 'h': {
      if (starts("hf_") && run(t, 3, is_alnum) >= 30) return 3 + run(t, 3, is_alnum);
      return 0;
    }
    case 'e': {
      // JWT: three base64url segments, the first two starting with eyJ ('{"').
      if (!starts("eyJ")) return 0;
      size_t a = run(t, 0, is_b64url);
      if (a < 10 || t.size() <= a || t[a] != '.') return 0;
      if (!t.substr(a + 1).starts_with("eyJ")) return 0;
      size_t b = run(t, a + 1, is_b64url);
      if (b < 10 || t.size() <= a + 1 + b || t[a + 1 + b] != '.') return 0;
      size_t c = run(t, a + 2 + b, is_b64url);
      if (c < 10) return 0;
      return a + 2 + b + c;
    }
    default: return 0;
  }
}

std::vector<Span> find_provider_keys(std::string_view s) {
  std::vector<Span> out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (!(c == 'A' || c == 'g' || c == 'x' || c == 's' || c == 'r' || c == 'S' || c == 'n' || c == 'h' || c == 'e'))
      continue;
    if (i > 0 && (is_alnum(s[i - 1]) || s[i - 1] == '_')) continue;
    size_t len = match_provider(s, i);
    if (len > 0) {
      out.push_back({i, i + len, "REDACTED_SECRET"});
      i += len - 1;
    }
  }
  return out;
}

// ---- credentials in URLs: scheme://user:password@host -------------------------------------------
bool placeholder_value(std::string_view v) {
  if (v.empty()) return true;
  if (v.front() == '$' || v.front() == '<' || v.front() == '{' || v.front() == '%' || v.front() == '[') return true;
  std::string l;
  for (char c : v) l += lower(c);
  static const char* kExact[] = {"password", "passwd", "secret", "token", "changeme", "none", "null", "nil",
                                 "undefined", "true", "false", "admin", "root", "test"};
  for (const char* w : kExact) {
    if (l == w) return true;
  }
  static const char* kWords[] = {"your", "example", "xxxx", "changeme", "change_me", "change-me", "redacted",
                                 "placeholder", "dummy", "${", "{{", "process.env", "environ", "getenv", "****",
                                 "insert", "replace", "todo", "fixme", "sample", "fake", "mock", "..."};
  for (const char* w : kWords) {
    if (l.find(w) != std::string::npos) return true;
  }
  return false;
}

std::vector<Span> find_url_credentials(std::string_view s) {
  std::vector<Span> out;
  size_t pos = 0;
  while ((pos = s.find("://", pos)) != std::string_view::npos) {
    size_t start = pos + 3;
    size_t i = start;
    while (i < s.size() && s[i] != '@' && s[i] != '/' && s[i] != ' ' && s[i] != '"' && s[i] != '\'' && s[i] != '\n' &&
           s[i] != '\t' && i - start < 200)
      ++i;
    if (i < s.size() && s[i] == '@') {
      std::string_view cred = s.substr(start, i - start);
      size_t colon = cred.find(':');
      if (colon != std::string_view::npos && colon + 1 < cred.size() && !placeholder_value(cred.substr(colon + 1))) {
        out.push_back({start, i, "REDACTED_SECRET"});
      }
    }
    pos = start;
  }
  return out;
}

// ---- high-entropy values assigned to secret-looking names ---------------------------------------
bool secret_name(std::string_view name) {
  std::string l;
  for (char c : name) l += lower(c);
  static const char* kNames[] = {"password", "passwd",   "passphrase", "secret",     "token",       "api_key",
                                 "apikey",   "api-key",  "access_key", "accesskey",  "private_key", "auth_key",
                                 "credential", "client_secret", "pwd",  "signing_key", "encryption_key", "bearer"};
  for (const char* w : kNames) {
    if (l.find(w) != std::string::npos) {
      // Names that mention a secret without holding one.
      if (l.find("tokeniz") != std::string::npos || l.find("_len") != std::string::npos ||
          l.find("max_") != std::string::npos || l.find("_count") != std::string::npos ||
          l.find("num_") != std::string::npos || l.find("_type") != std::string::npos ||
          l.find("_name") != std::string::npos || l.find("_file") != std::string::npos ||
          l.find("_path") != std::string::npos || l.find("_url") != std::string::npos ||
          l.find("_env") != std::string::npos || l.find("_field") != std::string::npos ||
          l.find("_id") != std::string::npos || l.find("_hash") != std::string::npos)
        return false;
      return true;
    }
  }
  return false;
}

bool looks_secret_value(std::string_view v, double min_entropy) {
  if (v.size() < 8 || v.size() > 200 || placeholder_value(v)) return false;
  int lowers = 0, uppers = 0, digits = 0, others = 0;
  for (char c : v) {
    if (c == ' ' || c == '\t') return false;  // sentences and commands are not secrets
    if (c >= 'a' && c <= 'z') ++lowers;
    else if (c >= 'A' && c <= 'Z') ++uppers;
    else if (c >= '0' && c <= '9') ++digits;
    else ++others;
  }
  int classes = (lowers > 0) + (uppers > 0) + (digits > 0) + (others > 0);
  if (classes < 2) return false;
  // CONSTANT_NAMES and dotted.identifiers are names, not values.
  if (lowers == 0 && digits == 0) return false;
  if (digits == 0 && others > 0) {
    bool ident_like = true;
    for (char c : v) ident_like &= is_word(c) || c == '.' || c == '-' || c == '/';
    if (ident_like) return false;
  }
  return shannon_entropy(v) >= min_entropy;
}

std::vector<Span> find_assigned_secrets(std::string_view s, double min_entropy) {
  std::vector<Span> out;
  size_t i = 0;
  while (i < s.size()) {
    if (!(is_word(s[i]) || s[i] == '-') || (i > 0 && (is_word(s[i - 1]) || s[i - 1] == '-'))) {
      ++i;
      continue;
    }
    size_t n = 0;
    while (i + n < s.size() && (is_word(s[i + n]) || s[i + n] == '-')) ++n;
    std::string_view name = s.substr(i, n);
    size_t j = i + n;
    if (!secret_name(name)) {
      i = j;
      continue;
    }
    // name["']? \s* (= | : | := | =>) \s* ["'`]? value
    if (j < s.size() && (s[j] == '"' || s[j] == '\'')) ++j;
    while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
    if (j >= s.size()) break;
    if (s[j] == ':' && j + 1 < s.size() && s[j + 1] == '=') j += 2;
    else if (s[j] == '=' && j + 1 < s.size() && s[j + 1] == '>') j += 2;
    else if (s[j] == '=' && !(j + 1 < s.size() && s[j + 1] == '=')) j += 1;
    else if (s[j] == ':') j += 1;
    else {
      i = j;
      continue;
    }
    while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
    if (j >= s.size()) break;
    char q = s[j];
    size_t vb, ve;
    if (q == '"' || q == '\'' || q == '`') {
      vb = j + 1;
      ve = vb;
      while (ve < s.size() && s[ve] != q && s[ve] != '\n') ++ve;
      if (ve >= s.size() || s[ve] != q) {
        i = j;
        continue;
      }
    } else {
      // Unquoted values (.env, YAML, INI): up to whitespace or a separator; code expressions are out.
      vb = j;
      ve = vb;
      while (ve < s.size() && s[ve] != ' ' && s[ve] != '\n' && s[ve] != '\r' && s[ve] != '\t' && s[ve] != ';' &&
             s[ve] != ',' && s[ve] != '#')
        ++ve;
      std::string_view v = s.substr(vb, ve - vb);
      if (v.find('(') != std::string_view::npos || v.find('[') != std::string_view::npos) {
        i = ve;
        continue;
      }
    }
    std::string_view value = s.substr(vb, ve - vb);
    if (looks_secret_value(value, min_entropy)) out.push_back({vb, ve, "REDACTED_SECRET"});
    i = ve;
  }
  return out;
}

// ---- git remotes ----------------------------------------------------------------------------------
size_t url_end(std::string_view s, size_t i) {
  while (i < s.size() && s[i] != ' ' && s[i] != '"' && s[i] != '\'' && s[i] != '\n' && s[i] != '\r' &&
         s[i] != '\t' && s[i] != ')' && s[i] != '>' && s[i] != '`' && s[i] != ']')
    ++i;
  return i;
}

std::vector<Span> find_git_remotes(std::string_view s) {
  std::vector<Span> out;
  // git@host:org/repo(.git)
  size_t pos = 0;
  while ((pos = s.find("git@", pos)) != std::string_view::npos) {
    if (pos > 0 && is_word(s[pos - 1])) {
      pos += 4;
      continue;
    }
    size_t e = url_end(s, pos + 4);
    std::string_view tok = s.substr(pos, e - pos);
    if (tok.find(':') != std::string_view::npos && tok.find('/') != std::string_view::npos) {
      out.push_back({pos, e, "REDACTED_GIT_REMOTE"});
    }
    pos = e;
  }
  // ssh://…, and http(s) URLs that name a repository.
  pos = 0;
  while ((pos = s.find("://", pos)) != std::string_view::npos) {
    size_t b = pos;
    while (b > 0 && (is_alnum(s[b - 1]) || s[b - 1] == '+')) --b;
    std::string_view scheme = s.substr(b, pos - b);
    size_t e = url_end(s, pos + 3);
    std::string_view url = s.substr(b, e - b);
    std::string_view rest = s.substr(pos + 3, e - pos - 3);
    bool remote = false;
    if (scheme == "ssh" || scheme == "git" || scheme == "git+ssh") remote = true;
    if ((scheme == "http" || scheme == "https") && url.ends_with(".git")) remote = true;
    if (scheme == "http" || scheme == "https") {
      for (std::string_view host : {"github.com/", "gitlab.com/", "bitbucket.org/"}) {
        size_t at = rest.find('@');
        std::string_view r = at == std::string_view::npos ? rest : rest.substr(at + 1);
        if (r.starts_with("www.")) r.remove_prefix(4);
        if (!r.starts_with(host)) continue;
        std::string_view path = r.substr(host.size());
        size_t slash = path.find('/');
        if (slash != std::string_view::npos && slash > 0 && slash + 1 < path.size()) remote = true;
      }
    }
    if (remote) out.push_back({b, e, "REDACTED_GIT_REMOTE"});
    pos = e > pos + 3 ? e : pos + 3;
  }
  std::sort(out.begin(), out.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  return out;
}

// ---- e-mail addresses -------------------------------------------------------------------------
bool email_local(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
bool email_domain(char c) { return is_alnum(c) || c == '.' || c == '-'; }

std::vector<Span> find_emails(std::string_view s, const Redactor& r) {
  std::vector<Span> out;
  size_t pos = 0;
  while ((pos = s.find('@', pos)) != std::string_view::npos) {
    size_t b = pos;
    while (b > 0 && email_local(s[b - 1])) --b;
    while (b < pos && (s[b] == '.' || s[b] == '-')) ++b;
    size_t e = pos + 1;
    while (e < s.size() && email_domain(s[e])) ++e;
    while (e > pos + 1 && (s[e - 1] == '.' || s[e - 1] == '-')) --e;
    std::string_view local = s.substr(b, pos - b);
    std::string_view domain = s.substr(pos + 1, e - pos - 1);
    size_t dot = domain.rfind('.');
    bool ok = !local.empty() && dot != std::string_view::npos && dot > 0;
    if (ok) {
      std::string_view tld = domain.substr(dot + 1);
      ok = tld.size() >= 2 && tld.size() <= 12;
      for (char c : tld) ok &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      // foo@2x.png and friends are file names.
      static const char* kFileExt[] = {"png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ts", "py", "json"};
      for (const char* x : kFileExt) ok &= std::string_view(tld) != x;
      // example domains are placeholders already (RFC 2606).
      ok &= domain.find("example.") == std::string_view::npos && !domain.ends_with(".invalid") &&
            !domain.ends_with(".test") && !domain.ends_with(".localhost");
    }
    if (ok) out.push_back({b, e, r.hash_name(local) + "@example.invalid"});
    pos = e > pos ? e : pos + 1;
  }
  return out;
}

// ---- home directories ---------------------------------------------------------------------------
bool user_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-'; }

bool generic_user(std::string_view u) {
  static const char* kGeneric[] = {"user", "username", "runner", "ubuntu", "debian", "root", "shared", "public",
                                   "default", "admin", "me", "you", "someone", "name", "USER", "USERNAME", "foo"};
  std::string l;
  for (char c : u) l += lower(c);
  for (const char* g : kGeneric) {
    if (l == g) return true;
  }
  return u.starts_with("user_") || u.starts_with("$") || u.starts_with("<") || u.starts_with("{");
}

std::vector<Span> find_home_dirs(std::string_view s, const Redactor& r, std::unordered_set<std::string>& users) {
  std::vector<Span> out;
  struct Prefix {
    const char* text;
    const char* sep;
  };
  static const Prefix kPrefixes[] = {{"/home/", "/"}, {"/Users/", "/"}, {"C:\\Users\\", "\\"},
                                     {"C:\\\\Users\\\\", "\\\\"}, {"c:\\users\\", "\\"}, {"C:/Users/", "/"}};
  for (const auto& p : kPrefixes) {
    size_t plen = std::strlen(p.text);
    size_t pos = 0;
    while ((pos = s.find(p.text, pos)) != std::string_view::npos) {
      size_t b = pos + plen;
      size_t e = b;
      while (e < s.size() && user_char(s[e])) ++e;
      std::string_view user = s.substr(b, e - b);
      if (!user.empty() && !generic_user(user)) {
        out.push_back({b, e, r.hash_name(user)});
        if (user.size() >= 3) users.insert(std::string(user));
      }
      pos = e > pos ? e : pos + 1;
    }
  }
  std::sort(out.begin(), out.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  return out;
}

std::vector<Span> find_usernames(std::string_view s, const Redactor& r, const std::unordered_set<std::string>& users) {
  std::vector<Span> out;
  for (const auto& u : users) {
    size_t pos = 0;
    while ((pos = s.find(u, pos)) != std::string_view::npos) {
      size_t e = pos + u.size();
      bool left = pos == 0 || !is_word(s[pos - 1]);
      bool right = e >= s.size() || !is_word(s[e]);
      if (left && right) out.push_back({pos, e, r.hash_name(u)});
      pos = e;
    }
  }
  std::sort(out.begin(), out.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  return out;
}

// ---- IPv4 addresses -----------------------------------------------------------------------------
std::vector<Span> find_ips(std::string_view s) {
  std::vector<Span> out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!(s[i] >= '0' && s[i] <= '9')) continue;
    if (i > 0 && (is_alnum(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '_')) continue;
    int octets[4];
    size_t j = i;
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      size_t d = 0;
      int v = 0;
      while (j < s.size() && s[j] >= '0' && s[j] <= '9' && d < 4) {
        v = v * 10 + (s[j] - '0');
        ++j;
        ++d;
      }
      ok = d >= 1 && d <= 3 && v <= 255;
      octets[k] = v;
      if (k < 3) {
        ok = ok && j < s.size() && s[j] == '.';
        ++j;
      }
    }
    if (!ok) continue;
    // Not part of a longer dotted number (1.2.3.4.5) or a word.
    if (j < s.size() && (is_alnum(s[j]) || (s[j] == '.' && j + 1 < s.size() && s[j + 1] >= '0' && s[j + 1] <= '9')))
      continue;
    bool keep = octets[0] == 127 || (octets[0] == 0 && octets[1] == 0 && octets[2] == 0 && octets[3] == 0) ||
                octets[0] == 255 || (octets[0] == 192 && octets[1] == 0 && octets[2] == 2);
    // Version strings: "version 1.2.3.4", "v1.2.3.4", "__version__ = '1.2.0.0'".
    size_t lb = i >= 16 ? i - 16 : 0;
    std::string ctx;
    for (char c : s.substr(lb, i - lb)) ctx += lower(c);
    if (ctx.find("version") != std::string::npos || ctx.find("ver ") != std::string::npos ||
        (i > 0 && lower(s[i - 1]) == 'v'))
      keep = true;
    if (!keep) out.push_back({i, j, "192.0.2.0"});
    i = j;
  }
  return out;
}

// ---- IPv6 addresses -----------------------------------------------------------------------------
// Candidates are maximal runs of hex digits and colons (plus an embedded dotted IPv4 tail) that
// inet_pton accepts. Code is full of colons, so a candidate must also look like an address rather than
// `a[1::2]`, `std::map` or a MAC/time: at least one group of 3+ hex digits, and either eight groups or a
// `::` with two or more groups.
std::vector<Span> find_ipv6(std::string_view s) {
  std::vector<Span> out;
  size_t i = 0;
  while ((i = s.find(':', i)) != std::string_view::npos) {
    size_t b = i;
    while (b > 0 && (is_hex(s[b - 1]) || s[b - 1] == ':')) --b;
    size_t e = i;
    while (e < s.size() && (is_hex(s[e]) || s[e] == ':' || s[e] == '.')) ++e;
    while (e > i && (s[e - 1] == '.' || (s[e - 1] == ':' && !(e >= 2 && s[e - 2] == ':')))) --e;
    size_t next = e > i ? e : i + 1;
    bool left_ok = b == 0 || !(is_alnum(s[b - 1]) || s[b - 1] == '_' || s[b - 1] == '.');
    bool right_ok = e >= s.size() || !(is_alnum(s[e]) || s[e] == '_');
    std::string cand(s.substr(b, e - b));
    if (!left_ok || !right_ok || cand.size() < 3 || cand.size() > 45) {
      i = next;
      continue;
    }
    int groups = 0, max_group = 0, cur = 0;
    for (char c : cand) {
      if (c == ':' ) {
        if (cur) ++groups;
        max_group = std::max(max_group, cur);
        cur = 0;
      } else {
        ++cur;
      }
    }
    if (cur) ++groups;
    max_group = std::max(max_group, cur);
    bool compressed = cand.find("::") != std::string::npos;
    bool shaped = max_group >= 3 && (groups >= 8 || (compressed && groups >= 2) ||
                                     cand.find('.') != std::string::npos);
    in6_addr addr{};
    if (!shaped || inet_pton(AF_INET6, cand.c_str(), &addr) != 1) {
      i = next;
      continue;
    }
    static const uint8_t kZero[16] = {};
    bool unspecified = std::memcmp(addr.s6_addr, kZero, 16) == 0;
    bool loopback = std::memcmp(addr.s6_addr, kZero, 15) == 0 && addr.s6_addr[15] == 1;
    bool documentation = addr.s6_addr[0] == 0x20 && addr.s6_addr[1] == 0x01 && addr.s6_addr[2] == 0x0d &&
                         addr.s6_addr[3] == 0xb8;
    if (!unspecified && !loopback && !documentation) out.push_back({b, e, "2001:db8::"});
    i = next;
  }
  return out;
}

}  // namespace

const char* redaction_kind_name(RedactionKind kind) {
  switch (kind) {
    case RedactionKind::kSecret: return "secret";
    case RedactionKind::kPrivateKey: return "private_key";
    case RedactionKind::kEmail: return "email";
    case RedactionKind::kIp: return "ip";
    case RedactionKind::kHomeDir: return "home_dir";
    case RedactionKind::kUsername: return "username";
    case RedactionKind::kGitRemote: return "git_remote";
    case RedactionKind::kCount: break;
  }
  return "unknown";
}

int64_t RedactionCounts::total() const {
  int64_t t = 0;
  for (auto v : n) t += v;
  return t;
}

void RedactionCounts::merge(const RedactionCounts& other) {
  for (size_t i = 0; i < n.size(); ++i) n[i] += other.n[i];
}

double shannon_entropy(std::string_view s) {
  if (s.empty()) return 0;
  std::array<int, 256> freq{};
  for (char c : s) ++freq[static_cast<uint8_t>(c)];
  double h = 0;
  for (int f : freq) {
    if (f == 0) continue;
    double p = static_cast<double>(f) / static_cast<double>(s.size());
    h -= p * std::log2(p);
  }
  return h;
}

Redactor::Redactor(RedactOptions options) : options_(std::move(options)) {}

std::string Redactor::hash_name(std::string_view name) const {
  static const char* kHex = "0123456789abcdef";
  uint64_t h = hash64(options_.salt, name);
  std::string out = "user_";
  for (int i = 0; i < 8; ++i) out += kHex[(h >> (60 - 4 * i)) & 0xf];
  return out;
}

std::string Redactor::redact(std::string_view text, RedactionCounts* counts) const {
  return redact(text, counts, nullptr);
}

std::string Redactor::redact(std::string_view text, RedactionCounts* counts,
                             std::vector<std::string>* home_users) const {
  std::string cur(text);
  auto pass = [&](RedactionKind kind, const std::vector<Span>& spans) {
    if (spans.empty()) return;
    if (counts) counts->add(kind, static_cast<int64_t>(spans.size()));
    cur = apply_spans(cur, spans);
  };
  if (cur.find("-----BEGIN ") != std::string::npos) pass(RedactionKind::kPrivateKey, find_private_keys(cur));
  pass(RedactionKind::kSecret, find_provider_keys(cur));
  bool has_scheme = cur.find("://") != std::string::npos;
  if (has_scheme) pass(RedactionKind::kSecret, find_url_credentials(cur));
  pass(RedactionKind::kSecret, find_assigned_secrets(cur, options_.min_entropy));
  if (has_scheme || cur.find("git@") != std::string::npos) pass(RedactionKind::kGitRemote, find_git_remotes(cur));
  if (cur.find('@') != std::string::npos) pass(RedactionKind::kEmail, find_emails(cur, *this));
  std::unordered_set<std::string> users(options_.usernames.begin(), options_.usernames.end());
  size_t configured = users.size();
  if (cur.find("/home/") != std::string::npos || cur.find("/Users/") != std::string::npos ||
      cur.find("Users\\") != std::string::npos || cur.find("users\\") != std::string::npos)
    pass(RedactionKind::kHomeDir, find_home_dirs(cur, *this, users));
  if (home_users && users.size() > configured) {
    for (const auto& u : users) {
      if (std::find(options_.usernames.begin(), options_.usernames.end(), u) == options_.usernames.end())
        home_users->push_back(u);
    }
  }
  if (!users.empty() || configured > 0) pass(RedactionKind::kUsername, find_usernames(cur, *this, users));
  pass(RedactionKind::kIp, find_ips(cur));
  if (cur.find(':') != std::string::npos) pass(RedactionKind::kIp, find_ipv6(cur));
  return cur;
}

}  // namespace tl::harvest
