// UTF-8 primitives: encoding round trips and the RFC 3629 validity rules.
#include "core/utf8.h"

#include <gtest/gtest.h>

namespace tl {
namespace {

TEST(Utf8, AppendEncodesEveryLength) {
  std::string s;
  for (uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F600u}) utf8_append(s, cp);
  EXPECT_EQ(s, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(utf8_invalid_at(s), std::string_view::npos);
}

TEST(Utf8, InvalidAtFindsTheFirstBadByte) {
  EXPECT_EQ(utf8_invalid_at("abc\xFF"), 3u);            // not a lead byte
  EXPECT_EQ(utf8_invalid_at("a\xC3"), 1u);              // truncated
  EXPECT_EQ(utf8_invalid_at("\xC0\xAF"), 0u);           // overlong 2-byte
  EXPECT_EQ(utf8_invalid_at("x\xE0\x80\xAF"), 1u);      // overlong 3-byte
  EXPECT_EQ(utf8_invalid_at("\xED\xA0\x80"), 0u);       // UTF-16 surrogate
  EXPECT_EQ(utf8_invalid_at("\xF4\x90\x80\x80"), 0u);   // above U+10FFFF
  EXPECT_EQ(utf8_invalid_at("\xF0\x8F\xBF\xBF"), 0u);   // overlong 4-byte
  EXPECT_EQ(utf8_invalid_at("\xF4\x8F\xBF\xBF"), std::string_view::npos);  // U+10FFFF itself
}

}  // namespace
}  // namespace tl
