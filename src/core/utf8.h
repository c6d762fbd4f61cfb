// UTF-8 primitives shared by every module that handles text (tokenizer, chat templates, harvest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tl {

// Appends the UTF-8 encoding of code point `cp` (callers pass valid scalar values).
void utf8_append(std::string& out, uint32_t cp);

// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or std::string_view::npos when `s` is valid.
size_t utf8_invalid_at(std::string_view s);

}  // namespace tl
