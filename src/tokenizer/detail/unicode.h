// Unicode helpers for the tokenizer: UTF-8 decoding and lossy repair, the GPT-2 byte-level alphabet,
// Unicode normalization forms (via utf8proc) and the two character classes HF's added-token matching
// uses (Rust's char::is_whitespace and char::is_alphanumeric).
//
// Kept separate so every tokenizer component agrees on one definition of "a character"; the lossy
// repair follows the Unicode "maximal subpart" rule, which is what both Python's
// bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy implement.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace tl::tokenizer_detail {

// Length of the well-formed UTF-8 sequence at s[i], or 0 if the bytes there are not one (invalid lead,
// bad continuation, truncated, overlong, surrogate or > U+10FFFF).
size_t utf8_sequence_length(std::string_view s, size_t i);
bool utf8_is_valid(std::string_view s);
// Replaces each maximal invalid subsequence by U+FFFD.
std::string utf8_lossy(std::string_view s);
// Decodes the code point of the well-formed sequence at s[i] (callers guarantee validity).
uint32_t utf8_decode_at(std::string_view s, size_t i, size_t* length);
// Byte length of the (valid) UTF-8 character starting with `lead`.
inline size_t utf8_char_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Rust char::is_whitespace (Unicode White_Space).
bool is_unicode_whitespace(uint32_t cp);
// Rust char::is_alphanumeric, approximated by general categories L* and N*.
bool is_unicode_alphanumeric(uint32_t cp);

// GPT-2's bytes_to_unicode(): every byte maps to a printable code point (printable Latin-1 bytes map
// to themselves, the rest to U+0100 + n in byte order).
struct ByteLevelAlphabet {
  ByteLevelAlphabet();
  std::array<uint32_t, 256> byte_to_cp;
  std::array<std::string, 256> byte_to_utf8;  // byte_to_cp as UTF-8 (1 or 2 bytes)
  // Inverse: code point -> byte, for code points < 512; -1 where no byte maps there.
  std::array<int16_t, 512> cp_to_byte;
};
const ByteLevelAlphabet& byte_level_alphabet();

enum class NormalForm { kNfc, kNfkc, kNfd, kNfkd };
// Normalizes valid UTF-8. Returns false only if utf8proc refuses (out of memory).
bool unicode_normalize(std::string_view in, NormalForm form, std::string& out);

}  // namespace tl::tokenizer_detail
