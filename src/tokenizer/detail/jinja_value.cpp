// Python value semantics for the Jinja-subset renderer: truthiness, ==, ordering, str(), repr(),
// json.dumps() and JSON → Value conversion (see jinja_value.h for why Python's rules matter).
#include "tokenizer/detail/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tokenizer/detail/jinja_text.h"

namespace tl::jinja {

const Value* DictData::find(const Value& key) const {
  for (const auto& [k, v] : entries) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

Value Value::list(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  return Value(std::move(data));
}

Value Value::dict(std::vector<std::pair<Value, Value>> entries) {
  auto data = std::make_shared<DictData>();
  for (auto& [k, v] : entries) data->set(std::move(k), std::move(v));
  return Value(std::move(data));
}

bool truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone: return false;
    case Value::Type::kBool: return v.as_bool();
    case Value::Type::kInt: return v.as_int() != 0;
    case Value::Type::kFloat: return v.as_float() != 0.0;
    case Value::Type::kString: return !v.as_string().empty();
    case Value::Type::kList: return !v.as_list().items.empty();
    case Value::Type::kDict: return !v.as_dict().entries.empty();
    case Value::Type::kNamespace:
    case Value::Type::kLoop:
    case Value::Type::kCallable: return true;
  }
  return false;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.float_value() == b.float_value();
    return a.int_value() == b.int_value();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone: return true;
    case Value::Type::kString: return a.as_string() == b.as_string();
    case Value::Type::kList: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Value::Type::kDict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Type::kNamespace: return &a.as_namespace() == &b.as_namespace();
    case Value::Type::kLoop: return &a.as_loop() == &b.as_loop();
    case Value::Type::kCallable: return &a.as_callable() == &b.as_callable();
    default: return false;  // numbers handled above
  }
}

Result<int> compare(const Value& a, const Value& b, std::string_view op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.float_value(), y = b.float_value();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const int64_t x = a.int_value(), y = b.int_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().compare(b.as_string());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.as_list().is_tuple == b.as_list().is_tuple) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      if (equals(x[i], y[i])) continue;
      return compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return invalid_argument("'{}' not supported between instances of '{}' and '{}'", op, type_name(a), type_name(b));
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, then Python's layout: positional when the
  // decimal exponent is in [-4, 16), else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = false;
  size_t p = 0;
  if (sci[0] == '-') {
    neg = true;
    p = 1;
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t i = p; i < e_pos; ++i) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  const int exp = std::stoi(sci.substr(e_pos + 1));
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  const int n = static_cast<int>(digits.size());
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    } else if (exp + 1 >= n) {
      out += digits;
      out.append(static_cast<size_t>(exp + 1 - n), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp + 1));
      out += ".";
      out += digits.substr(static_cast<size_t>(exp + 1));
    }
  } else {
    out += digits.substr(0, 1);
    if (n > 1) {
      out += ".";
      out += digits.substr(1);
    }
    out += exp < 0 ? "e-" : "e+";
    const int a = exp < 0 ? -exp : exp;
    if (a < 10) out += "0";
    out += std::to_string(a);
  }
  return out;
}

std::string type_name(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "Undefined";
    case Value::Type::kNone: return "NoneType";
    case Value::Type::kBool: return "bool";
    case Value::Type::kInt: return "int";
    case Value::Type::kFloat: return "float";
    case Value::Type::kString: return "str";
    case Value::Type::kList: return v.as_list().is_tuple ? "tuple" : "list";
    case Value::Type::kDict: return "dict";
    case Value::Type::kNamespace: return "Namespace";
    case Value::Type::kLoop: return "LoopContext";
    case Value::Type::kCallable: return "function";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_namespace()) return "jinja2.utils.Namespace object";
  if (v.is_loop()) return "jinja2.runtime.LoopContext object";
  return type_name(v) + " object";
}

// Depth-limited so a namespace that holds itself cannot recurse forever (Python prints such
// cycles as {...}; we print "..." past the limit).
static void repr_into(std::string& out, const Value& v, int depth);

static void repr_items(std::string& out, const std::vector<Value>& items, int depth) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    repr_into(out, items[i], depth + 1);
  }
}

static void repr_dict(std::string& out, const DictData& d, int depth) {
  out += "{";
  bool first = true;
  for (const auto& [k, val] : d.entries) {
    if (!first) out += ", ";
    first = false;
    repr_into(out, k, depth + 1);
    out += ": ";
    repr_into(out, val, depth + 1);
  }
  out += "}";
}

static void repr_into(std::string& out, const Value& v, int depth) {
  if (depth > 64) {
    out += "...";
    return;
  }
  switch (v.type()) {
    case Value::Type::kString: out += py_str_repr(v.as_string()); return;
    case Value::Type::kList: {
      const auto& l = v.as_list();
      out += l.is_tuple ? "(" : "[";
      repr_items(out, l.items, depth);
      if (l.is_tuple && l.items.size() == 1) out += ",";
      out += l.is_tuple ? ")" : "]";
      return;
    }
    case Value::Type::kDict: repr_dict(out, v.as_dict(), depth); return;
    case Value::Type::kNamespace:
      out += "<Namespace ";
      repr_dict(out, v.as_namespace().attrs, depth);
      out += ">";
      return;
    case Value::Type::kUndefined: out += "Undefined"; return;
    default: out += to_str(v); return;
  }
}

std::string repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

std::string to_str(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "";
    case Value::Type::kNone: return "None";
    case Value::Type::kBool: return v.as_bool() ? "True" : "False";
    case Value::Type::kInt: return std::to_string(v.as_int());
    case Value::Type::kFloat: return float_repr(v.as_float());
    case Value::Type::kString: return v.as_string();
    case Value::Type::kLoop: {
      const auto& l = v.as_loop();
      return fmt::format("<LoopContext {}/{}>", l.index0 + 1, l.items->items.size());
    }
    case Value::Type::kCallable: return fmt::format("<function {}>", v.as_callable().name);
    default: return repr(v);
  }
}

// --- json.dumps ----------------------------------------------------------------------------------

namespace {

struct JsonWriter {
  const JsonDumpOptions& opt;
  std::string item_sep;
  std::string key_sep;
  std::string out;

  void newline_indent(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += *opt.indent;
  }

  Result<std::string> key_string(const Value& k) {
    switch (k.type()) {
      case Value::Type::kString: return k.as_string();
      case Value::Type::kBool: return std::string(k.as_bool() ? "true" : "false");
      case Value::Type::kInt: return std::to_string(k.as_int());
      case Value::Type::kFloat: return float_repr(k.as_float());
      case Value::Type::kNone: return std::string("null");
      default: return invalid_argument("keys must be str, int, float, bool or None, not {}", type_name(k));
    }
  }

  Status write(const Value& v, int level) {
    if (level > kMaxJsonDepth) return invalid_argument("maximum recursion depth exceeded in tojson");
    switch (v.type()) {
      case Value::Type::kNone: out += "null"; return Status::ok();
      case Value::Type::kBool: out += v.as_bool() ? "true" : "false"; return Status::ok();
      case Value::Type::kInt: out += std::to_string(v.as_int()); return Status::ok();
      case Value::Type::kFloat: {
        const double d = v.as_float();
        if (std::isnan(d)) out += "NaN";
        else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
        else out += float_repr(d);
        return Status::ok();
      }
      case Value::Type::kString: json_escape(out, v.as_string(), opt.ensure_ascii); return Status::ok();
      case Value::Type::kList: {
        const auto& items = v.as_list().items;
        if (items.empty()) {
          out += "[]";
          return Status::ok();
        }
        out += "[";
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep;
          if (opt.indent) newline_indent(level + 1);
          TL_TRY(write(items[i], level + 1));
        }
        if (opt.indent) newline_indent(level);
        out += "]";
        return Status::ok();
      }
      case Value::Type::kDict: {
        const auto& d = v.as_dict();
        if (d.entries.empty()) {
          out += "{}";
          return Status::ok();
        }
        std::vector<std::pair<std::string, const Value*>> items;
        for (const auto& [k, val] : d.entries) {
          TL_ASSIGN_OR_RETURN(std::string key, key_string(k));
          items.emplace_back(std::move(key), &val);
        }
        if (opt.sort_keys) {
          std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        }
        out += "{";
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep;
          if (opt.indent) newline_indent(level + 1);
          json_escape(out, items[i].first, opt.ensure_ascii);
          out += key_sep;
          TL_TRY(write(*items[i].second, level + 1));
        }
        if (opt.indent) newline_indent(level);
        out += "}";
        return Status::ok();
      }
      default: return invalid_argument("Object of type {} is not JSON serializable", type_name(v));
    }
  }
};

template <typename Json>
Result<Value> convert_json(const Json& j, int depth) {
  if (depth > kMaxJsonDepth) return invalid_argument("context JSON nests deeper than {} levels", kMaxJsonDepth);
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value(None{});
    case nlohmann::json::value_t::boolean: return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.template get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));  // beyond int64: Python keeps an exact int (documented)
    }
    case nlohmann::json::value_t::number_float: return Value(j.template get<double>());
    case nlohmann::json::value_t::string: return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) {
        TL_ASSIGN_OR_RETURN(Value item, convert_json(e, depth + 1));
        items.push_back(std::move(item));
      }
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<DictData>();
      d->entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        TL_ASSIGN_OR_RETURN(Value item, convert_json(it.value(), depth + 1));
        d->set(Value(it.key()), std::move(item));
      }
      return Value(std::move(d));
    }
    default: return invalid_argument("context JSON holds a binary value, which templates cannot use");
  }
}

}  // namespace

Result<std::string> to_json(const Value& v, const JsonDumpOptions& options) {
  // Python: default separators are (", ", ": "), or ("," , ": ") when indenting.
  std::string item_sep = options.separators ? options.separators->first : std::string(options.indent ? "," : ", ");
  std::string key_sep = options.separators ? options.separators->second : std::string(": ");
  JsonWriter w{options, std::move(item_sep), std::move(key_sep), {}};
  TL_TRY(w.write(v, 0));
  return std::move(w.out);
}

Result<Value> from_json(const nlohmann::json& j) { return convert_json(j, 0); }
Result<Value> from_json(const nlohmann::ordered_json& j) { return convert_json(j, 0); }

}  // namespace tl::jinja
