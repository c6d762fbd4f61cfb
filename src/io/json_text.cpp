#include "io/json_text.h"

#include <nlohmann/json.hpp>

namespace tl {

std::string json_syntax_error(std::string_view text) {
  try {
    const nlohmann::json parsed = nlohmann::json::parse(text);
    (void)parsed;
  } catch (const nlohmann::json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at line 1, column 7: syntax error while
    // parsing object - unexpected end of input; expected '}'": keep from "line".
    // A one-line text (a JSONL record, whose file line the caller names) keeps only the column.
    const std::string what = e.what();
    const bool one_line = text.find('\n') == std::string_view::npos;
    const size_t at = what.find(one_line ? "column " : "line ");
    return at == std::string::npos ? what : what.substr(at);
  }
  return "";
}

}  // namespace tl
