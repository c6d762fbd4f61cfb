// Parser of the Jinja-subset renderer: tokens → TemplateAst, following jinja2's parser.py grammar
// (operator precedence, filters binding tighter than arithmetic, tests after `is`, for-loop filters,
// namespace attribute assignment). Constructs that jinja2 accepts but chat templates never need
// (extends, include, import, block, call blocks, *args) are rejected with an error naming the line,
// so an unsupported template fails at load time rather than rendering something different.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "tokenizer/detail/jinja_ast.h"

namespace tl::jinja {

// Deepest nesting of expressions/statements accepted; deeper input is an error, not a stack overflow.
inline constexpr int kMaxParseDepth = 200;

// Errors read "<origin>:<line>:<col>: <what>" (kInvalidArgument for syntax errors,
// kUnimplemented for valid jinja2 that this renderer does not support).
Result<std::shared_ptr<const TemplateAst>> parse_template(std::string_view source, const std::string& origin);

}  // namespace tl::jinja
