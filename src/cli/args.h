// A small command-line parser for tuneloop subcommands: positionals plus `--flag value` / `--switch`.
// Every command declares the flags it knows, so a typo is an error rather than silently ignored.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace tl::cli {

class Args {
 public:
  // `valued` flags take the next argument; `switches` take none.
  static Result<Args> parse(const std::vector<std::string>& argv, const std::set<std::string>& valued,
                            const std::set<std::string>& switches);

  const std::vector<std::string>& positionals() const { return positionals_; }
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::optional<std::string> get(const std::string& flag) const;
  Result<std::string> require(const std::string& flag) const;
  Result<long long> get_int(const std::string& flag, long long fallback, long long min, long long max) const;
  Result<double> get_double(const std::string& flag, double fallback, double min, double max) const;

 private:
  std::vector<std::string> positionals_;
  std::map<std::string, std::string> values_;
};

// Parses "1,2,3" into ids; errors name the flag and the bad element.
Result<std::vector<int>> parse_id_list(const std::string& flag, const std::string& text);

}  // namespace tl::cli
