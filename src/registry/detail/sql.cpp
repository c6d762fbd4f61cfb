// Row decoding and placeholder rewriting shared by both SQL backends.
#include "registry/detail/sql.h"

#include <cstdlib>

namespace tl::registry::detail {

int64_t SqlRow::i64(size_t i) const {
  const auto& c = cols.at(i);
  if (!c || c->empty()) return 0;
  return std::strtoll(c->c_str(), nullptr, 10);
}

double SqlRow::f64(size_t i) const {
  const auto& c = cols.at(i);
  if (!c || c->empty()) return 0.0;
  return std::strtod(c->c_str(), nullptr);
}

std::string number_placeholders(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool in_string = false;
  for (char ch : sql) {
    if (ch == '\'') in_string = !in_string;  // '' escapes toggle twice, which is what we want
    if (ch == '?' && !in_string) {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace tl::registry::detail
