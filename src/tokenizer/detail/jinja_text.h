// Python str semantics over UTF-8 bytes, for the Jinja-subset renderer.
//
// Python strings are sequences of code points, so len(), s[i], s[a:b] and s[::-1] count code points,
// and str.strip()/split() with no argument use Python's Unicode whitespace set, not C's isspace().
// Templates rely on this (Mistral slices tojson output with out[:-1]; Llama trims content), so we
// decode to code points where positions matter. Case mapping (upper/lower/title) is ASCII-only: a
// documented difference (docs/chat_templates.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/utf8.h"

namespace tl::jinja {

// Decodes UTF-8; an invalid byte decodes as itself (U+0080..U+00FF range) so no input is lost.
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
size_t utf8_length(std::string_view s);

// Python str.isspace() for one code point (\t\n\v\f\r, \x1c-\x1f, space, \x85, \xa0, U+1680,
// U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000).
bool py_isspace(char32_t c);

// str.strip/lstrip/rstrip: `chars` null = whitespace, else the set of code points in *chars.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split(sep, maxsplit) / rsplit; sep null = runs of whitespace.
std::vector<std::string> py_split(std::string_view s, const std::string* sep, int64_t maxsplit, bool from_right);
// str.splitlines() (keepends=False), Python's line boundaries.
std::vector<std::string> py_splitlines(std::string_view s);
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
// str.upper/lower/capitalize/title (ASCII case mapping; other code points unchanged).
std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);
// Python's str.find in code points (-1 when absent); count of non-overlapping occurrences.
int64_t py_find(std::string_view s, std::string_view sub, bool from_right);
int64_t py_count(std::string_view s, std::string_view sub);

// Python repr() of a str: '...' (or "..." when it holds ' but no "), escapes as CPython.
std::string py_str_repr(std::string_view s);
// JSON string literal as json.dumps writes it.
void json_escape(std::string& out, std::string_view s, bool ensure_ascii);

}  // namespace tl::jinja
