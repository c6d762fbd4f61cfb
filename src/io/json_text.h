// Why a text is not JSON, for error messages: a file cut short (a copy interrupted, a disk full) should
// be reported as that, with where the parser gave up, not as "not a JSON object".
//
// Usage:
//   json j = json::parse(text, nullptr, false);
//   if (j.is_discarded())
//     return invalid_argument("{}: invalid JSON ({})", path, tl::json_syntax_error(text));
#pragma once

#include <string>
#include <string_view>

namespace tl {

// "line L, column C: <what the parser expected>" for a text that is not valid JSON ("column C: ..." when
// the text is one line); "" for one that is.
std::string json_syntax_error(std::string_view text);

}  // namespace tl
