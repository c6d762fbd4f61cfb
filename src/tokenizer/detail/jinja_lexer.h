// Lexer of the Jinja-subset renderer: template source → tokens, reproducing jinja2's lexer with
// trim_blocks=True and lstrip_blocks=True (Hugging Face's chat-template environment).
//
// Whitespace handling is where renderers usually drift from jinja2, so this follows jinja2's
// lexer.py rule by rule: newlines are normalised to "\n" and one trailing newline is dropped; a
// "-" after an opening tag strips all whitespace before it; otherwise a block/comment tag (not
// "{{") that is alone on its line after spaces/tabs loses that indentation, unless opened with "+";
// a "%}" or "#}" swallows one following newline unless written "+%}"; "-%}" / "-}}" / "-#}" strip
// all whitespace after. {% raw %} bodies come out as data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tl::jinja {

enum class TokenType {
  kData,           // template text (already whitespace-controlled)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,   // text holds the unescaped value
  kInteger,  // int_value
  kFloat,    // float_value
  kOperator,  // text holds the operator ("+", "//", "[", ...)
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int col = 1;
};

// Tokenizes `source`; lexical errors read "<origin>:<line>:<col>: <what>".
Result<std::vector<Token>> tokenize(std::string_view source, const std::string& origin);

}  // namespace tl::jinja
