// Builtins of the Jinja-subset renderer: filters, tests, Python methods on str/dict/list, attribute
// and item lookup with jinja2's fallbacks, arithmetic, and the globals Hugging Face provides.
//
// Everything here reproduces jinja2 3.1 (filters.py, tests.py, sandbox.py, defaults.py) plus
// transformers' tojson override, raise_exception and strftime_now. Builtins return errors without a
// location; the interpreter adds "<origin>:<line>: " for the node that failed.
#pragma once

#include <string>

#include "core/status.h"
#include "tokenizer/detail/jinja_interpreter.h"
#include "tokenizer/detail/jinja_value.h"

namespace tl::jinja {

bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Result<Value> apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
Result<bool> apply_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);

// jinja2 Environment.getattr / getitem under ImmutableSandboxedEnvironment: attribute first for
// `a.b` (so dict methods win over keys), item first for `a[b]`, and an Undefined carrying jinja2's
// hint when both miss. Mutating methods (list.append, dict.update) come back as an Undefined that
// fails with jinja2's SecurityError text when called.
Result<Value> get_attr(Interpreter& in, const Value& obj, const std::string& name);
Result<Value> get_item(Interpreter& in, const Value& obj, const Value& key);
// obj[start:stop:step] with Python's clamping rules (null pointers = omitted bounds).
Result<Value> get_slice(Interpreter& in, const Value& obj, const Value* start, const Value* stop, const Value* step);

// Binary operators + - * / // % ** with Python semantics (int64; overflow is an error).
Result<Value> binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b);
Result<Value> negate(const Value& v, bool negative);
// Python `item in container`.
Result<bool> contains(const Value& container, const Value& item);
// Python iter(): list items, dict keys, str code points; Undefined iterates as empty.
Result<std::vector<Value>> iterate(const Value& v);
// The error an operation on an Undefined raises (jinja2 UndefinedError text).
Status undefined_error(const Value& v);

// Globals visible to every template: range, dict, namespace, raise_exception, strftime_now.
void add_globals(Frame& frame);

}  // namespace tl::jinja
