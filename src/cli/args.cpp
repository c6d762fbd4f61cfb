#include "cli/args.h"

#include <cerrno>
#include <cstdlib>

namespace tl::cli {

Result<Args> Args::parse(const std::vector<std::string>& argv, const std::set<std::string>& valued,
                         const std::set<std::string>& switches) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      std::string name = a, value;
      bool inline_value = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        inline_value = true;
      }
      if (valued.count(name)) {
        if (!inline_value) {
          if (i + 1 >= argv.size()) return invalid_argument("{} expects a value", name);
          value = argv[++i];
        }
        args.values_[name] = value;
      } else if (switches.count(name)) {
        if (inline_value) return invalid_argument("{} takes no value", name);
        args.values_[name] = "";
      } else {
        return invalid_argument("unknown option {}", name);
      }
    } else {
      args.positionals_.push_back(a);
    }
  }
  return args;
}

std::optional<std::string> Args::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

Result<std::string> Args::require(const std::string& flag) const {
  auto v = get(flag);
  if (!v) return invalid_argument("missing required option {}", flag);
  return *v;
}

Result<long long> Args::get_int(const std::string& flag, long long fallback, long long min, long long max) const {
  auto v = get(flag);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE || n < min || n > max) {
    return invalid_argument("{}: expected an integer in [{}, {}], got '{}'", flag, min, max, *v);
  }
  return n;
}

Result<double> Args::get_double(const std::string& flag, double fallback, double min, double max) const {
  auto v = get(flag);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno == ERANGE || !(x >= min && x <= max)) {
    return invalid_argument("{}: expected a number in [{}, {}], got '{}'", flag, min, max, *v);
  }
  return x;
}

Result<std::vector<int>> parse_id_list(const std::string& flag, const std::string& text) {
  std::vector<int> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || n < 0 || n > 0x7fffffff) {
      return invalid_argument("{}: expected comma-separated non-negative token ids, got '{}' at element {}", flag,
                              item, ids.size());
    }
    ids.push_back(static_cast<int>(n));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

}  // namespace tl::cli
