// The value type of the Jinja-subset renderer: what template expressions evaluate to.
//
// jinja2 evaluates templates over Python objects, and a chat template's output depends on Python's
// rules for them (str() of True is "True", repr() of a list quotes strings with '...', 1/2 is a float,
// dict iteration keeps insertion order, json.dumps separators). This file models exactly the Python
// values chat templates meet — None, bool, int, float, str, list, tuple, dict — plus jinja2's own
// objects (Undefined, namespace(), the loop object, callables), and the Python formatting rules
// (str, repr, json.dumps) that turn them into text. Lists and dicts are shared by pointer as in
// Python; the sandbox we reproduce (ImmutableSandboxedEnvironment) never mutates them, only
// namespace() objects change.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace tl::jinja {

class Value;
struct CallArgs;
class Interpreter;

// jinja2's Undefined: falsy, prints as "", iterates as empty; any other use fails with `hint`
// ("'x' is undefined", "'dict object' has no attribute 'y'").
struct Undefined {
  std::string hint;
};
struct None {};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;  // Python tuple: prints as (a, b), never equal to a list
};

// An insertion-ordered dict, as Python's. Keys are Values (strings in practice); lookup is linear
// because chat-template dicts are small (a message, a tool schema).
struct DictData {
  std::vector<std::pair<Value, Value>> entries;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

// namespace(): the one mutable object; `{% set ns.x = ... %}` writes its attributes.
struct NamespaceData {
  DictData attrs;
};

// The `loop` variable of a for loop. Items are kept to answer previtem/nextitem.
struct LoopData {
  std::shared_ptr<const ListData> items;
  int64_t index0 = 0;
  int64_t depth0 = 0;
};

// A builtin, a bound method, or a macro. `fn` gets the interpreter (macros render through it).
struct Callable {
  std::string name;
  std::function<Result<Value>(Interpreter&, CallArgs&)> fn;
};

class Value {
 public:
  enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kLoop, kCallable };

  Value() : v_(Undefined{}) {}
  Value(Undefined u) : v_(std::move(u)) {}  // NOLINT: values convert implicitly, as in Python
  Value(None) : v_(None{}) {}               // NOLINT
  Value(bool b) : v_(b) {}                  // NOLINT
  Value(int64_t i) : v_(i) {}               // NOLINT
  Value(int i) : v_(int64_t{i}) {}          // NOLINT
  Value(double d) : v_(d) {}                // NOLINT
  Value(std::string s) : v_(std::move(s)) {}  // NOLINT
  Value(const char* s) : v_(std::string(s)) {}  // NOLINT
  Value(std::shared_ptr<ListData> l) : v_(std::move(l)) {}  // NOLINT
  Value(std::shared_ptr<DictData> d) : v_(std::move(d)) {}  // NOLINT
  Value(std::shared_ptr<NamespaceData> n) : v_(std::move(n)) {}  // NOLINT
  Value(std::shared_ptr<LoopData> l) : v_(std::move(l)) {}  // NOLINT
  Value(std::shared_ptr<Callable> c) : v_(std::move(c)) {}  // NOLINT

  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value list(std::vector<Value> items, bool is_tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> entries);

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_undefined() const { return type() == Type::kUndefined; }
  bool is_none() const { return type() == Type::kNone; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_float() const { return type() == Type::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const { return type() == Type::kString; }
  bool is_list() const { return type() == Type::kList; }  // list or tuple
  bool is_dict() const { return type() == Type::kDict; }
  bool is_namespace() const { return type() == Type::kNamespace; }
  bool is_loop() const { return type() == Type::kLoop; }
  bool is_callable() const { return type() == Type::kCallable; }

  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const ListData& as_list() const { return *std::get<std::shared_ptr<ListData>>(v_); }
  std::shared_ptr<ListData> list_ptr() const { return std::get<std::shared_ptr<ListData>>(v_); }
  const DictData& as_dict() const { return *std::get<std::shared_ptr<DictData>>(v_); }
  NamespaceData& as_namespace() const { return *std::get<std::shared_ptr<NamespaceData>>(v_); }
  const LoopData& as_loop() const { return *std::get<std::shared_ptr<LoopData>>(v_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<Callable>>(v_); }

  // Python int() of a bool or int; float() of any number.
  int64_t int_value() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }
  double float_value() const { return is_float() ? as_float() : static_cast<double>(int_value()); }

 private:
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<ListData>,
               std::shared_ptr<DictData>, std::shared_ptr<NamespaceData>, std::shared_ptr<LoopData>,
               std::shared_ptr<Callable>>
      v_;
};

// Arguments of a call, filter or test: positional then keyword, in source order.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  int line = 0;
};

// Python truthiness (Undefined is falsy).
bool truthy(const Value& v);
// Python ==, with jinja2's Undefined == Undefined.
bool equals(const Value& a, const Value& b);
// Python <, > ... as a three-way result; TypeError-style failure naming `op` for unorderable types.
Result<int> compare(const Value& a, const Value& b, std::string_view op = "<");
// Python str(x) as jinja2 prints it ({{ x }}): Undefined prints as "".
std::string to_str(const Value& v);
// Python repr(x).
std::string repr(const Value& v);
// Python's name for the value's type: "str", "int", "list", "dict", "NoneType", ...
std::string type_name(const Value& v);
// jinja2's object_type_repr(), used in undefined hints: "dict object", "None", "list object".
std::string object_type_repr(const Value& v);
// Python repr() of a float: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf".
std::string float_repr(double d);

// json.dumps(v, ensure_ascii=..., indent=..., separators=..., sort_keys=...) as transformers'
// tojson filter calls it. `indent`: nullopt = None; otherwise the per-level indent string.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
Result<std::string> to_json(const Value& v, const JsonDumpOptions& options);

// JSON (as parsed by nlohmann, either key order) → Value. Objects become dicts in the json's order.
// Fails only on nesting deeper than kMaxJsonDepth (conversion is recursive).
inline constexpr int kMaxJsonDepth = 512;
Result<Value> from_json(const nlohmann::json& j);
Result<Value> from_json(const nlohmann::ordered_json& j);

}  // namespace tl::jinja
