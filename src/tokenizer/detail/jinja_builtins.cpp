// Filters, tests, methods, lookups, operators and globals of the Jinja-subset renderer, each
// reproducing the jinja2 3.1 / CPython behaviour named in its comment (see jinja_builtins.h).
#include "tokenizer/detail/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "tokenizer/detail/jinja_text.h"

namespace tl::jinja {
namespace {

// Binds positional and keyword arguments to a Python-style signature.
Result<std::vector<std::optional<Value>>> bind(const CallArgs& a, std::initializer_list<std::string_view> names,
                                               std::string_view what) {
  std::vector<std::optional<Value>> out(names.size());
  if (a.args.size() > names.size()) {
    return invalid_argument("{}() takes at most {} argument(s) ({} given)", what, names.size(), a.args.size());
  }
  for (size_t i = 0; i < a.args.size(); ++i) out[i] = a.args[i];
  for (const auto& [key, value] : a.kwargs) {
    size_t idx = 0;
    bool found = false;
    for (auto n : names) {
      if (n == key) {
        found = true;
        break;
      }
      ++idx;
    }
    if (!found) return invalid_argument("{}() got an unexpected keyword argument '{}'", what, key);
    if (out[idx]) return invalid_argument("{}() got multiple values for argument '{}'", what, key);
    out[idx] = value;
  }
  return out;
}

Value make_tuple(Value a, Value b) { return Value::list({std::move(a), std::move(b)}, true); }

Result<int64_t> as_index(const Value& v, std::string_view what) {
  if (v.is_int() || v.is_bool()) return v.int_value();
  return invalid_argument("{} must be an integer, not {}", what, type_name(v));
}

Value unsafe_attr(const Value& obj, const std::string& name) {
  return Value::undefined(fmt::format("access to attribute {} of {} object is unsafe.", py_str_repr(name),
                                      py_str_repr(type_name(obj))));
}

Value missing_attr(const Value& obj, const std::string& name) {
  return Value::undefined(fmt::format("{} has no attribute {}", py_str_repr(object_type_repr(obj)), py_str_repr(name)));
}

std::shared_ptr<Callable> method(std::string name, std::function<Result<Value>(Interpreter&, CallArgs&)> fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->fn = std::move(fn);
  return c;
}

Result<std::string> str_arg(const std::optional<Value>& v, std::string_view what) {
  if (!v || !v->is_string()) {
    return invalid_argument("{} must be str, not {}", what, v ? type_name(*v) : std::string("nothing"));
  }
  return v->as_string();
}

// Python str.format with positional / keyword fields and no format specs.
Result<Value> str_format(const std::string& fmt_s, const CallArgs& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < fmt_s.size(); ++i) {
    const char c = fmt_s[i];
    if (c == '{' && i + 1 < fmt_s.size() && fmt_s[i + 1] == '{') {
      out.push_back('{');
      ++i;
    } else if (c == '}' && i + 1 < fmt_s.size() && fmt_s[i + 1] == '}') {
      out.push_back('}');
      ++i;
    } else if (c == '{') {
      const size_t close = fmt_s.find('}', i);
      if (close == std::string::npos) return invalid_argument("Single '{{' encountered in format string");
      const std::string field = fmt_s.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos) {
        return unimplemented("str.format field '{{{}}}' (format specs, conversions and attribute lookups are not supported)", field);
      }
      const Value* v = nullptr;
      if (field.empty() || std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
        const size_t idx = field.empty() ? auto_idx++ : static_cast<size_t>(std::stoul(field));
        if (idx >= a.args.size()) return invalid_argument("Replacement index {} out of range for positional args tuple", idx);
        v = &a.args[idx];
      } else {
        for (const auto& [k, val] : a.kwargs) {
          if (k == field) v = &val;
        }
        if (!v) return invalid_argument("'{}'", field);
      }
      out += to_str(*v);
      i = close;
    } else if (c == '}') {
      return invalid_argument("Single '}}' encountered in format string");
    } else {
      out.push_back(c);
    }
  }
  return Value(std::move(out));
}

// Python printf-style `str % args` for %s, %r, %d, %i and %%.
Result<Value> percent_format(const std::string& f, const Value& args) {
  std::vector<Value> items;
  if (args.is_list() && args.as_list().is_tuple) items = args.as_list().items;
  else items.push_back(args);
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      out.push_back(f[i]);
      continue;
    }
    if (i + 1 >= f.size()) return invalid_argument("incomplete format");
    const char spec = f[++i];
    if (spec == '%') {
      out.push_back('%');
      continue;
    }
    if (next >= items.size()) return invalid_argument("not enough arguments for format string");
    const Value& v = items[next++];
    if (spec == 's') out += to_str(v);
    else if (spec == 'r') out += repr(v);
    else if (spec == 'd' || spec == 'i') {
      if (!v.is_number()) return invalid_argument("%{} format: a real number is required, not {}", spec, type_name(v));
      out += std::to_string(v.is_float() ? static_cast<int64_t>(v.as_float()) : v.int_value());
    } else {
      return unimplemented("'%{}' in %-formatting is not supported", spec);
    }
  }
  if (next < items.size()) return invalid_argument("not all arguments converted during string formatting");
  return Value(std::move(out));
}

Result<Value> string_method(Interpreter& in, const std::string& s, const std::string& name, CallArgs& a) {
  (void)in;
  auto chars_arg = [&](std::string_view what) -> Result<std::optional<std::string>> {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"chars"}, what));
    if (!b[0] || b[0]->is_none()) return std::optional<std::string>();
    TL_ASSIGN_OR_RETURN(std::string c, str_arg(b[0], what));
    return std::optional<std::string>(c);
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    TL_ASSIGN_OR_RETURN(auto chars, chars_arg(name));
    return Value(py_strip(s, chars ? &*chars : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"sep", "maxsplit"}, name));
    int64_t maxsplit = -1;
    if (b[1]) {
      TL_ASSIGN_OR_RETURN(maxsplit, as_index(*b[1], "maxsplit"));
    }
    std::optional<std::string> sep;
    if (b[0] && !b[0]->is_none()) {
      TL_ASSIGN_OR_RETURN(std::string x, str_arg(b[0], "sep"));
      if (x.empty()) return invalid_argument("empty separator");
      sep = x;
    }
    std::vector<Value> parts;
    for (auto& p : py_split(s, sep ? &*sep : nullptr, maxsplit, name == "rsplit")) parts.emplace_back(std::move(p));
    return Value::list(std::move(parts));
  }
  if (name == "startswith" || name == "endswith") {
    if (a.args.size() != 1 || !a.kwargs.empty()) return unimplemented("{}() with start/end arguments", name);
    std::vector<std::string> options;
    if (a.args[0].is_string()) {
      options.push_back(a.args[0].as_string());
    } else if (a.args[0].is_list() && a.args[0].as_list().is_tuple) {
      for (const auto& v : a.args[0].as_list().items) {
        if (!v.is_string()) return invalid_argument("tuple for {} must only contain str, not {}", name, type_name(v));
        options.push_back(v.as_string());
      }
    } else {
      return invalid_argument("{} first arg must be str or a tuple of str, not {}", name, type_name(a.args[0]));
    }
    for (const auto& o : options) {
      const bool hit = name == "startswith" ? s.compare(0, o.size(), o) == 0
                                            : (s.size() >= o.size() && s.compare(s.size() - o.size(), o.size(), o) == 0);
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "casefold") {
    TL_TRY(bind(a, {}, name));
    if (name == "upper") return Value(ascii_upper(s));
    if (name == "title") return Value(py_title(s));
    if (name == "capitalize") return Value(py_capitalize(s));
    return Value(ascii_lower(s));
  }
  if (name == "replace") {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"old", "new", "count"}, name));
    TL_ASSIGN_OR_RETURN(std::string old, str_arg(b[0], "replace() argument 1"));
    TL_ASSIGN_OR_RETURN(std::string repl, str_arg(b[1], "replace() argument 2"));
    int64_t count = -1;
    if (b[2]) {
      TL_ASSIGN_OR_RETURN(count, as_index(*b[2], "count"));
    }
    std::string r = py_replace(s, old, repl, count);
    TL_TRY(in.check_size(r.size()));
    return Value(std::move(r));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    if (a.args.size() != 1 || !a.kwargs.empty()) return unimplemented("{}() with start/end arguments", name);
    TL_ASSIGN_OR_RETURN(std::string sub, str_arg(a.args[0], "must be str"));
    if (name == "count") return Value(py_count(s, sub));
    const int64_t pos = py_find(s, sub, name[0] == 'r');
    if (pos < 0 && (name == "index" || name == "rindex")) return invalid_argument("substring not found");
    return Value(pos);
  }
  if (name == "join") {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"iterable"}, name));
    if (!b[0]) return invalid_argument("join() takes exactly one argument (0 given)");
    TL_ASSIGN_OR_RETURN(auto items, iterate(*b[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return invalid_argument("sequence item {}: expected str instance, {} found", i, type_name(items[i]));
      }
      if (i) out += s;
      out += items[i].as_string();
      TL_TRY(in.check_size(out.size()));
    }
    return Value(std::move(out));
  }
  if (name == "splitlines") {
    TL_TRY(bind(a, {}, name));
    std::vector<Value> parts;
    for (auto& p : py_splitlines(s)) parts.emplace_back(std::move(p));
    return Value::list(std::move(parts));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    TL_TRY(bind(a, {}, name));
    const std::u32string cps = utf8_decode(s);
    if (name == "isupper" || name == "islower") {
      bool cased = false;
      for (char32_t c : cps) {
        if ((c >= 'a' && c <= 'z')) {
          if (name == "isupper") return Value(false);
          cased = true;
        }
        if ((c >= 'A' && c <= 'Z')) {
          if (name == "islower") return Value(false);
          cased = true;
        }
      }
      return Value(cased);
    }
    if (cps.empty()) return Value(false);
    for (char32_t c : cps) {
      const bool digit = c >= '0' && c <= '9';
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      bool ok = name == "isdigit" ? digit : name == "isalpha" ? alpha : name == "isalnum" ? (digit || alpha) : py_isspace(c);
      if (!ok) return Value(false);
    }
    return Value(true);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"affix"}, name));
    TL_ASSIGN_OR_RETURN(std::string x, str_arg(b[0], name));
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value(s.substr(x.size()));
    if (name == "removesuffix" && !x.empty() && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return Value(s.substr(0, s.size() - x.size()));
    }
    return Value(s);
  }
  if (name == "format") return str_format(s, a);
  return invalid_argument("str method '{}' is not supported", name);
}

const std::set<std::string>& string_methods() {
  static const std::set<std::string> k = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith",
                                          "upper", "lower", "title", "capitalize", "casefold", "replace", "find",
                                          "rfind", "index", "rindex", "count", "join", "splitlines", "isdigit",
                                          "isalpha", "isalnum", "isspace", "isupper", "islower", "removeprefix",
                                          "removesuffix", "format"};
  return k;
}

Result<Value> dict_method(const Value& self, const std::string& name, CallArgs& a) {
  const DictData& d = self.as_dict();
  if (name == "items" || name == "keys" || name == "values") {
    TL_TRY(bind(a, {}, name));
    std::vector<Value> out;
    for (const auto& [k, v] : d.entries) {
      out.push_back(name == "items" ? make_tuple(k, v) : (name == "keys" ? k : v));
    }
    return Value::list(std::move(out));
  }
  if (name == "get") {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"key", "default"}, name));
    if (!b[0]) return invalid_argument("get expected at least 1 argument, got 0");
    const Value* v = d.find(*b[0]);
    if (v) return *v;
    return b[1] ? *b[1] : Value(None{});
  }
  // copy: the sandbox never mutates dicts, so sharing is a faithful copy.
  TL_TRY(bind(a, {}, name));
  return self;
}

Result<Value> list_method(const Value& self, const std::string& name, CallArgs& a) {
  const auto& items = self.as_list().items;
  if (name == "index" || name == "count") {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"value"}, name));
    if (!b[0]) return invalid_argument("{} expected 1 argument, got 0", name);
    int64_t n = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!equals(items[i], *b[0])) continue;
      if (name == "index") return Value(static_cast<int64_t>(i));
      ++n;
    }
    if (name == "index") return invalid_argument("{} is not in list", repr(*b[0]));
    return Value(n);
  }
  TL_TRY(bind(a, {}, name));  // copy
  return Value::list(items, self.as_list().is_tuple);
}

Value bound(const Value& self, const std::string& name) {
  const std::string type = type_name(self);
  return Value(method(name, [self, name](Interpreter& in, CallArgs& a) -> Result<Value> {
    if (self.is_string()) return string_method(in, self.as_string(), name, a);
    if (self.is_dict()) return dict_method(self, name, a);
    return list_method(self, name, a);
  }));
}

Result<Value> loop_attr(const Value& obj, const std::string& name) {
  const LoopData& l = obj.as_loop();
  const auto n = static_cast<int64_t>(l.items->items.size());
  if (name == "index") return Value(l.index0 + 1);
  if (name == "index0") return Value(l.index0);
  if (name == "revindex") return Value(n - l.index0);
  if (name == "revindex0") return Value(n - l.index0 - 1);
  if (name == "first") return Value(l.index0 == 0);
  if (name == "last") return Value(l.index0 == n - 1);
  if (name == "length") return Value(n);
  if (name == "depth") return Value(int64_t{1});
  if (name == "depth0") return Value(int64_t{0});
  if (name == "previtem") {
    if (l.index0 == 0) return Value::undefined("there is no previous item");
    return l.items->items[static_cast<size_t>(l.index0 - 1)];
  }
  if (name == "nextitem") {
    if (l.index0 + 1 >= n) return Value::undefined("there is no next item");
    return l.items->items[static_cast<size_t>(l.index0 + 1)];
  }
  if (name == "cycle") {
    const int64_t idx = l.index0;
    return Value(method("cycle", [idx](Interpreter&, CallArgs& a) -> Result<Value> {
      if (a.args.empty()) return invalid_argument("no items for cycling given");
      return a.args[static_cast<size_t>(idx % static_cast<int64_t>(a.args.size()))];
    }));
  }
  if (name == "changed") return unimplemented("loop.changed()");
  return missing_attr(obj, name);
}

// The Python attribute (method) named `name` of `obj`, if it has one: found / unsafe / absent.
std::optional<Value> python_attr(const Value& obj, const std::string& name) {
  static const std::set<std::string> kDictSafe = {"items", "keys", "values", "get", "copy"};
  static const std::set<std::string> kDictUnsafe = {"clear", "pop", "popitem", "setdefault", "update", "fromkeys"};
  static const std::set<std::string> kListSafe = {"index", "count", "copy"};
  static const std::set<std::string> kListUnsafe = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};
  if (obj.is_string() && string_methods().count(name)) return bound(obj, name);
  if (obj.is_dict()) {
    if (kDictSafe.count(name)) return bound(obj, name);
    if (kDictUnsafe.count(name)) return unsafe_attr(obj, name);
  }
  if (obj.is_list()) {
    const bool tuple = obj.as_list().is_tuple;
    if (name == "index" || name == "count" || (!tuple && kListSafe.count(name))) return bound(obj, name);
    if (!tuple && kListUnsafe.count(name)) return unsafe_attr(obj, name);
  }
  return std::nullopt;
}

Value to_key_value(const std::string& part) {
  if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Value(static_cast<int64_t>(std::stoll(part)));
  }
  return Value(part);
}

// jinja2 make_attrgetter: "a.b.0" looked up item-first at each step; `default` replaces Undefined.
Result<Value> attr_path(Interpreter& in, Value v, const Value& attribute, const std::optional<Value>& dflt) {
  std::vector<Value> parts;
  if (attribute.is_string()) {
    const std::string sep = ".";
    for (auto& p : py_split(attribute.as_string(), &sep, -1, false)) parts.push_back(to_key_value(p));
  } else {
    parts.push_back(attribute);
  }
  for (const auto& p : parts) {
    TL_ASSIGN_OR_RETURN(v, get_item(in, v, p));
  }
  if (dflt && v.is_undefined()) return *dflt;
  return v;
}

Value ignore_case(const Value& v) { return v.is_string() ? Value(ascii_lower(v.as_string())) : v; }

// Stable sort by key with Python's ordering; the first comparison error is returned.
Status sort_values(std::vector<Value>& items, const std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Status error;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    if (!error.is_ok()) return false;
    auto c = reverse ? compare(keys[y], keys[x]) : compare(keys[x], keys[y]);
    if (!c.is_ok()) {
      error = c.status();
      return false;
    }
    return *c < 0;
  });
  TL_TRY(error);
  std::vector<Value> sorted;
  sorted.reserve(items.size());
  for (size_t i : order) sorted.push_back(items[i]);
  items = std::move(sorted);
  return Status::ok();
}

Result<std::vector<Value>> attr_keys(Interpreter& in, const std::vector<Value>& items, const std::optional<Value>& attribute,
                                     bool case_sensitive) {
  std::vector<Value> keys;
  for (const auto& item : items) {
    Value k = item;
    if (attribute && !attribute->is_none()) {
      TL_ASSIGN_OR_RETURN(k, attr_path(in, item, *attribute, std::nullopt));
    }
    keys.push_back(case_sensitive ? k : ignore_case(k));
  }
  return keys;
}

Result<int64_t> length(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return int64_t{0};
    case Value::Type::kString: return static_cast<int64_t>(utf8_length(v.as_string()));
    case Value::Type::kList: return static_cast<int64_t>(v.as_list().items.size());
    case Value::Type::kDict: return static_cast<int64_t>(v.as_dict().entries.size());
    case Value::Type::kLoop: return static_cast<int64_t>(v.as_loop().items->items.size());
    default: return invalid_argument("object of type '{}' has no len()", type_name(v));
  }
}

// Python float(str): strtod over the stripped text, rejecting trailing garbage.
std::optional<double> parse_float(const std::string& s) {
  std::string t = py_strip(s, nullptr, true, true);
  t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return d;
}

std::optional<int64_t> parse_int(const std::string& s, int base) {
  std::string t = py_strip(s, nullptr, true, true);
  t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(t.c_str(), &end, base);
  if (end != t.c_str() + t.size() || errno == ERANGE) return std::nullopt;
  return v;
}

// Python round(x, n) for floats: correctly rounded, ties to even, which glibc's printf implements.
double py_round(double x, int64_t n) {
  if (n > 300 || !std::isfinite(x)) return x;
  if (n < 0) {
    const double p = std::pow(10.0, static_cast<double>(-n));
    return std::nearbyint(x / p) * p;
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(n), x);
  return std::strtod(buf, nullptr);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

Result<Value> call_test_or_filter_select(Interpreter& in, const std::string& which, const Value& input, CallArgs& a) {
  // select / reject / selectattr / rejectattr (jinja2 prepare_select_or_reject).
  const bool lookup_attr = which == "selectattr" || which == "rejectattr";
  const bool keep_if = which == "select" || which == "selectattr";
  size_t off = 0;
  Value attribute;
  if (lookup_attr) {
    if (a.args.empty()) return invalid_argument("Missing parameter for attribute name");
    attribute = a.args[0];
    off = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  test_args.kwargs = a.kwargs;
  if (a.args.size() > off) {
    if (!a.args[off].is_string()) return invalid_argument("test name must be a string");
    test = a.args[off].as_string();
    if (!has_test(*test)) return invalid_argument("No test named {}.", py_str_repr(*test));
    test_args.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(off + 1), a.args.end());
  }
  TL_ASSIGN_OR_RETURN(auto items, iterate(input));
  std::vector<Value> out;
  for (const auto& item : items) {
    TL_TRY(in.step());
    Value subject = item;
    if (lookup_attr) {
      TL_ASSIGN_OR_RETURN(subject, attr_path(in, item, attribute, std::nullopt));
    }
    bool ok;
    if (test) {
      CallArgs copy = test_args;
      TL_ASSIGN_OR_RETURN(ok, apply_test(in, *test, subject, copy));
    } else {
      ok = truthy(subject);
    }
    if (ok == keep_if) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Result<Value> filter_tojson(const Value& input, CallArgs& a) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson"));
  JsonDumpOptions opt;
  if (b[0]) opt.ensure_ascii = truthy(*b[0]);
  if (b[1] && !b[1]->is_none()) {
    if (b[1]->is_string()) {
      opt.indent = b[1]->as_string();
    } else if (b[1]->is_int() || b[1]->is_bool()) {
      const int64_t n = b[1]->int_value();
      opt.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(n, 0, 1024)), ' ');
    } else {
      return invalid_argument("indent must be an int or a str, not {}", type_name(*b[1]));
    }
  }
  if (b[2] && !b[2]->is_none()) {
    if (!b[2]->is_list() || b[2]->as_list().items.size() != 2 || !b[2]->as_list().items[0].is_string() ||
        !b[2]->as_list().items[1].is_string()) {
      return invalid_argument("separators must be a pair of strings");
    }
    opt.separators = std::make_pair(b[2]->as_list().items[0].as_string(), b[2]->as_list().items[1].as_string());
  }
  if (b[3]) opt.sort_keys = truthy(*b[3]);
  TL_ASSIGN_OR_RETURN(std::string s, to_json(input, opt));
  return Value(std::move(s));
}

using FilterFn = Result<Value> (*)(Interpreter&, const Value&, CallArgs&);

Result<Value> f_abs(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "abs"));
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    if (v.int_value() == INT64_MIN) return invalid_argument("integer overflow");
    return Value(v.int_value() < 0 ? -v.int_value() : v.int_value());
  }
  return invalid_argument("bad operand type for abs(): '{}'", type_name(v));
}

Result<Value> f_attr(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"name"}, "attr"));
  TL_ASSIGN_OR_RETURN(std::string name, str_arg(b[0], "attribute name"));
  // jinja2 do_attr: Python getattr only, never the item (so a dict key is not an attribute here).
  if (v.is_undefined()) return undefined_error(v);
  if (v.is_dict() && !python_attr(v, name)) return missing_attr(v, name);
  return get_attr(in, v, name);
}

Result<Value> f_batch(Interpreter&, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"linecount", "fill_with"}, "batch"));
  if (!b[0]) return invalid_argument("batch() missing required argument 'linecount'");
  TL_ASSIGN_OR_RETURN(int64_t n, as_index(*b[0], "linecount"));
  if (n <= 0) return invalid_argument("batch size must be positive");
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  std::vector<Value> out, cur;
  for (auto& item : items) {
    cur.push_back(item);
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (b[1] && !b[1]->is_none()) {
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*b[1]);
    }
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

Result<Value> f_capitalize(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "capitalize"));
  return Value(py_capitalize(to_str(v)));
}

Result<Value> f_center(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"width"}, "center"));
  int64_t width = 80;
  if (b[0]) {
    TL_ASSIGN_OR_RETURN(width, as_index(*b[0], "width"));
  }
  const std::string s = to_str(v);
  const auto len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return Value(s);
  TL_TRY(in.check_size(static_cast<size_t>(width)));
  // CPython: left = pad/2 + (pad & width & 1)
  const int64_t pad = width - len;
  const int64_t left = pad / 2 + (pad & width & 1);
  return Value(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(pad - left), ' '));
}

Result<Value> f_default(Interpreter&, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"default_value", "boolean"}, "default"));
  const Value dflt = b[0] ? *b[0] : Value(std::string());
  const bool boolean = b[1] && truthy(*b[1]);
  if (v.is_undefined() || (boolean && !truthy(v))) return dflt;
  return v;
}

Result<Value> f_dictsort(Interpreter&, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"case_sensitive", "by", "reverse"}, "dictsort"));
  if (v.is_undefined()) return undefined_error(v);
  if (!v.is_dict()) return invalid_argument("dictsort expects a mapping, got {}", type_name(v));
  const bool cs = b[0] && truthy(*b[0]);
  size_t pos = 0;
  if (b[1]) {
    if (b[1]->is_string() && b[1]->as_string() == "value") pos = 1;
    else if (!(b[1]->is_string() && b[1]->as_string() == "key")) return invalid_argument("You can only sort by either \"key\" or \"value\"");
  }
  std::vector<Value> items, keys;
  for (const auto& [k, val] : v.as_dict().entries) {
    items.push_back(make_tuple(k, val));
    keys.push_back(cs ? (pos ? val : k) : ignore_case(pos ? val : k));
  }
  TL_TRY(sort_values(items, keys, b[2] && truthy(*b[2])));
  return Value::list(std::move(items));
}

Result<Value> f_escape(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "escape"));
  return Value(html_escape(to_str(v)));
}

Result<Value> f_first(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "first"));
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Result<Value> f_last(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "last"));
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Result<Value> f_float(Interpreter&, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"default"}, "float"));
  const Value dflt = b[0] ? *b[0] : Value(0.0);
  if (v.is_number()) return Value(v.float_value());
  if (v.is_string()) {
    auto d = parse_float(v.as_string());
    if (d) return Value(*d);
  }
  return dflt;
}

Result<Value> f_indent(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"width", "first", "blank"}, "indent"));
  std::string indention = "    ";
  if (b[0]) {
    if (b[0]->is_string()) {
      indention = b[0]->as_string();
    } else {
      TL_ASSIGN_OR_RETURN(int64_t w, as_index(*b[0], "width"));
      indention = std::string(static_cast<size_t>(std::clamp<int64_t>(w, 0, 4096)), ' ');
    }
  }
  if (v.is_undefined()) return undefined_error(v);
  if (!v.is_string()) return invalid_argument("unsupported operand type(s) for +=: '{}' and 'str'", type_name(v));
  const std::string s = v.as_string() + "\n";  // jinja2's quirk for splitlines
  const auto lines = py_splitlines(s);
  std::string rv;
  if (b[2] && truthy(*b[2])) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? std::string() : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += indention;
      rv += lines[i];
      TL_TRY(in.check_size(rv.size()));
    }
  }
  if (b[1] && truthy(*b[1])) rv = indention + rv;
  return Value(std::move(rv));
}

Result<Value> f_int(Interpreter&, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"default", "base"}, "int"));
  const Value dflt = b[0] ? *b[0] : Value(int64_t{0});
  int64_t base = 10;
  if (b[1]) {
    TL_ASSIGN_OR_RETURN(base, as_index(*b[1], "base"));
  }
  if (v.is_int() || v.is_bool()) return Value(v.int_value());
  if (v.is_float()) {
    const double d = std::trunc(v.as_float());
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return dflt;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    if (base >= 2 && base <= 36) {
      auto i = parse_int(v.as_string(), static_cast<int>(base));
      if (i) return Value(*i);
    }
    auto d = parse_float(v.as_string());
    if (d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) return Value(static_cast<int64_t>(std::trunc(*d)));
  }
  return dflt;
}

Result<Value> f_items(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "items"));
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) return invalid_argument("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.as_dict().entries) out.push_back(make_tuple(k, val));
  return Value::list(std::move(out));
}

Result<Value> f_join(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"d", "attribute"}, "join"));
  const std::string sep = b[0] ? to_str(*b[0]) : std::string();
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (b[1] && !b[1]->is_none()) {
      TL_ASSIGN_OR_RETURN(item, attr_path(in, item, *b[1], std::nullopt));
    }
    if (i) out += sep;
    out += to_str(item);
    TL_TRY(in.check_size(out.size()));
  }
  return Value(std::move(out));
}

Result<Value> f_length(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "length"));
  TL_ASSIGN_OR_RETURN(int64_t n, length(v));
  return Value(n);
}

Result<Value> f_list(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "list"));
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  return Value::list(std::move(items));
}

Result<Value> f_lower(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "lower"));
  return Value(ascii_lower(to_str(v)));
}

Result<Value> f_upper(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "upper"));
  return Value(ascii_upper(to_str(v)));
}

Result<Value> f_map(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  std::vector<Value> out;
  if (a.args.empty()) {
    std::optional<Value> attribute, dflt;
    for (const auto& [k, val] : a.kwargs) {
      if (k == "attribute") attribute = val;
      else if (k == "default") dflt = val;
      else return invalid_argument("Unexpected keyword argument {}", py_str_repr(k));
    }
    if (!attribute) return invalid_argument("map requires a filter argument");
    if (dflt && dflt->is_none()) dflt.reset();
    for (const auto& item : items) {
      TL_ASSIGN_OR_RETURN(Value x, attr_path(in, item, *attribute, dflt));
      out.push_back(std::move(x));
    }
    return Value::list(std::move(out));
  }
  if (!a.args[0].is_string()) return invalid_argument("map filter name must be a string");
  const std::string name = a.args[0].as_string();
  if (!has_filter(name)) return invalid_argument("No filter named {}.", py_str_repr(name));
  for (const auto& item : items) {
    TL_TRY(in.step());
    CallArgs rest;
    rest.args.assign(a.args.begin() + 1, a.args.end());
    rest.kwargs = a.kwargs;
    TL_ASSIGN_OR_RETURN(Value x, apply_filter(in, name, item, rest));
    out.push_back(std::move(x));
  }
  return Value::list(std::move(out));
}

Result<Value> min_max(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"case_sensitive", "attribute"}, want_max ? "max" : "min"));
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  if (items.empty()) {
    return Value::undefined(want_max ? "No largest item, sequence was empty." : "No smallest item, sequence was empty.");
  }
  TL_ASSIGN_OR_RETURN(auto keys, attr_keys(in, items, b[1], b[0] && truthy(*b[0])));
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    TL_ASSIGN_OR_RETURN(int c, compare(keys[i], keys[best]));
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}
Result<Value> f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Result<Value> f_min(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }

Result<Value> f_replace(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"old", "new", "count"}, "replace"));
  if (!b[0] || !b[1]) return invalid_argument("replace() missing required arguments");
  int64_t count = -1;
  if (b[2] && !b[2]->is_none()) {
    TL_ASSIGN_OR_RETURN(count, as_index(*b[2], "count"));
  }
  std::string r = py_replace(to_str(v), to_str(*b[0]), to_str(*b[1]), count);
  TL_TRY(in.check_size(r.size()));
  return Value(std::move(r));
}

Result<Value> f_reverse(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "reverse"));
  if (v.is_string()) {
    std::u32string cps = utf8_decode(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(utf8_encode(cps));
  }
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Result<Value> f_round(Interpreter&, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"precision", "method"}, "round"));
  int64_t precision = 0;
  if (b[0]) {
    TL_ASSIGN_OR_RETURN(precision, as_index(*b[0], "precision"));
  }
  std::string method_name = "common";
  if (b[1]) {
    TL_ASSIGN_OR_RETURN(method_name, str_arg(b[1], "method"));
  }
  if (method_name != "common" && method_name != "ceil" && method_name != "floor") {
    return invalid_argument("method must be common, ceil or floor");
  }
  if (!v.is_number()) return invalid_argument("type {} doesn't define __round__ method", type_name(v));
  if (method_name == "common") {
    if (!v.is_float() && precision >= 0) return Value(v.int_value());
    return Value(py_round(v.float_value(), precision));
  }
  const double p = std::pow(10.0, static_cast<double>(precision));
  const double x = v.float_value() * p;
  return Value((method_name == "ceil" ? std::ceil(x) : std::floor(x)) / p);
}

Result<Value> f_safe(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "safe"));
  return Value(to_str(v));
}

Result<Value> f_select(Interpreter& in, const Value& v, CallArgs& a) { return call_test_or_filter_select(in, "select", v, a); }
Result<Value> f_reject(Interpreter& in, const Value& v, CallArgs& a) { return call_test_or_filter_select(in, "reject", v, a); }
Result<Value> f_selectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return call_test_or_filter_select(in, "selectattr", v, a);
}
Result<Value> f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return call_test_or_filter_select(in, "rejectattr", v, a);
}

Result<Value> f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"reverse", "case_sensitive", "attribute"}, "sort"));
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  TL_ASSIGN_OR_RETURN(auto keys, attr_keys(in, items, b[2], b[1] && truthy(*b[1])));
  TL_TRY(sort_values(items, keys, b[0] && truthy(*b[0])));
  return Value::list(std::move(items));
}

Result<Value> f_string(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "string"));
  return Value(to_str(v));
}

Result<Value> f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"attribute", "start"}, "sum"));
  Value total = b[1] ? *b[1] : Value(int64_t{0});
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  for (const auto& item : items) {
    Value x = item;
    if (b[0] && !b[0]->is_none()) {
      TL_ASSIGN_OR_RETURN(x, attr_path(in, item, *b[0], std::nullopt));
    }
    TL_ASSIGN_OR_RETURN(total, binary_op(in, "+", total, x));
  }
  return total;
}

Result<Value> f_title(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "title"));
  // jinja2 do_title: split on runs of [-\s({\[<]; each piece is piece[0].upper() + rest.lower().
  const std::u32string cps = utf8_decode(to_str(v));
  auto is_sep = [](char32_t c) { return py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  std::string out;
  bool word_start = true;
  for (char32_t c : cps) {
    if (is_sep(c)) {
      utf8_append(out, c);
      word_start = true;
      continue;
    }
    std::string one;
    utf8_append(one, c);
    out += word_start ? ascii_upper(one) : ascii_lower(one);
    word_start = false;
  }
  return Value(std::move(out));
}

Result<Value> f_tojson(Interpreter&, const Value& v, CallArgs& a) { return filter_tojson(v, a); }

Result<Value> f_trim(Interpreter&, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"chars"}, "trim"));
  std::optional<std::string> chars;
  if (b[0] && !b[0]->is_none()) {
    TL_ASSIGN_OR_RETURN(std::string c, str_arg(b[0], "chars"));
    chars = c;
  }
  return Value(py_strip(to_str(v), chars ? &*chars : nullptr, true, true));
}

Result<Value> f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  TL_ASSIGN_OR_RETURN(auto b, bind(a, {"case_sensitive", "attribute"}, "unique"));
  TL_ASSIGN_OR_RETURN(auto items, iterate(v));
  TL_ASSIGN_OR_RETURN(auto keys, attr_keys(in, items, b[1], b[0] && truthy(*b[0])));
  std::vector<Value> out, seen;
  for (size_t i = 0; i < items.size(); ++i) {
    bool dup = false;
    for (const auto& s : seen) dup = dup || equals(s, keys[i]);
    if (dup) continue;
    seen.push_back(keys[i]);
    out.push_back(items[i]);
  }
  return Value::list(std::move(out));
}

Result<Value> f_wordcount(Interpreter&, const Value& v, CallArgs& a) {
  TL_TRY(bind(a, {}, "wordcount"));
  // Python's \w+: letters, digits and underscore; non-ASCII code points count as word characters
  // unless they are whitespace (an approximation of Unicode categories, see docs).
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(to_str(v))) {
    const bool w = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                   (c >= 0x80 && !py_isspace(c) && !(c >= 0x2000 && c <= 0x206F) && !(c >= 0x3000 && c <= 0x303F));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> k = {
      {"abs", f_abs},         {"attr", f_attr},       {"batch", f_batch},         {"capitalize", f_capitalize},
      {"center", f_center},   {"count", f_length},    {"d", f_default},           {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},      {"escape", f_escape},       {"first", f_first},
      {"float", f_float},     {"indent", f_indent},   {"int", f_int},             {"items", f_items},
      {"join", f_join},       {"last", f_last},       {"length", f_length},       {"list", f_list},
      {"lower", f_lower},     {"map", f_map},         {"max", f_max},             {"min", f_min},
      {"reject", f_reject},   {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
      {"round", f_round},     {"safe", f_safe},       {"select", f_select},       {"selectattr", f_selectattr},
      {"sort", f_sort},       {"string", f_string},   {"sum", f_sum},             {"title", f_title},
      {"tojson", f_tojson},   {"trim", f_trim},       {"unique", f_unique},       {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return k;
}

Result<bool> number_mod(const Value& v, int64_t m, bool want_zero_remainder, int64_t expect) {
  if (!v.is_number()) return invalid_argument("unsupported operand type(s) for %: '{}' and 'int'", type_name(v));
  if (v.is_float()) {
    double r = std::fmod(v.as_float(), static_cast<double>(m));
    if (r != 0 && ((r < 0) != (m < 0))) r += static_cast<double>(m);
    return want_zero_remainder ? r == 0 : r == static_cast<double>(expect);
  }
  int64_t r = v.int_value() % m;
  if (r != 0 && ((r < 0) != (m < 0))) r += m;
  return want_zero_remainder ? r == 0 : r == expect;
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) > 0; }

bool has_test(const std::string& name) {
  static const std::set<std::string> k = {
      "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
      "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
      "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", ">=", "ge", "<", "lt",
      "lessthan", "<=", "le"};
  return k.count(name) > 0;
}

Result<Value> apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) return invalid_argument("No filter named {}.", py_str_repr(name));
  return it->second(in, input, args);
}

Result<bool> apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& a) {
  (void)in;
  auto one_arg = [&]() -> Result<Value> {
    if (a.args.size() + a.kwargs.size() != 1) return invalid_argument("test '{}' takes exactly one argument", name);
    return a.args.empty() ? a.kwargs[0].second : a.args[0];
  };
  auto no_args = [&]() -> Status {
    if (!a.args.empty() || !a.kwargs.empty()) return invalid_argument("test '{}' takes no arguments", name);
    return Status::ok();
  };
  if (name == "defined" || name == "undefined") {
    TL_TRY(no_args());
    return v.is_undefined() == (name == "undefined");
  }
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() || v.is_loop();
  if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") {
    CallArgs none;
    TL_ASSIGN_OR_RETURN(Value r, string_method(in, to_str(v), name == "lower" ? "islower" : "isupper", none));
    return truthy(r);
  }
  if (name == "odd" || name == "even") {
    if (v.is_undefined()) return undefined_error(v);
    return number_mod(v, 2, name == "even", 1);
  }
  if (name == "divisibleby") {
    TL_ASSIGN_OR_RETURN(Value n, one_arg());
    if (!n.is_int() && !n.is_bool()) return invalid_argument("divisibleby expects an integer");
    if (n.int_value() == 0) return invalid_argument("integer division or modulo by zero");
    if (v.is_undefined()) return undefined_error(v);
    return number_mod(v, n.int_value(), true, 0);
  }
  if (name == "filter" || name == "test") {
    if (!v.is_string()) return false;
    return name == "filter" ? has_filter(v.as_string()) : has_test(v.as_string());
  }
  if (name == "sameas") {
    TL_ASSIGN_OR_RETURN(Value other, one_arg());
    if (v.type() != other.type()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == other.as_bool();
    if (v.is_list()) return v.list_ptr() == other.list_ptr();
    return equals(v, other);  // ints and strings: CPython identity is an interning detail
  }
  if (name == "in") {
    TL_ASSIGN_OR_RETURN(Value seq, one_arg());
    return contains(seq, v);
  }
  TL_ASSIGN_OR_RETURN(Value other, one_arg());
  if (name == "==" || name == "eq" || name == "equalto") return equals(v, other);
  if (name == "!=" || name == "ne") return !equals(v, other);
  std::string op = name == ">" || name == "gt" || name == "greaterthan" ? ">"
                   : name == ">=" || name == "ge"                      ? ">="
                   : name == "<" || name == "lt" || name == "lessthan"  ? "<"
                                                                        : "<=";
  if (v.is_undefined()) return undefined_error(v);
  if (other.is_undefined()) return undefined_error(other);
  TL_ASSIGN_OR_RETURN(int c, compare(v, other, op));
  return op == ">" ? c > 0 : op == ">=" ? c >= 0 : op == "<" ? c < 0 : c <= 0;
}

Status undefined_error(const Value& v) {
  return invalid_argument("{}", v.is_undefined() ? v.undefined_hint() : std::string("undefined value"));
}

Result<Value> get_attr(Interpreter& in, const Value& obj, const std::string& name) {
  (void)in;
  if (obj.is_undefined()) return undefined_error(obj);
  if (auto m = python_attr(obj, name)) return *m;
  if (obj.is_loop()) return loop_attr(obj, name);
  if (obj.is_namespace()) {
    const Value* v = obj.as_namespace().attrs.find(std::string_view(name));
    if (v) return *v;
    return missing_attr(obj, name);
  }
  if (obj.is_dict()) {
    const Value* v = obj.as_dict().find(std::string_view(name));
    if (v) return *v;
  }
  return missing_attr(obj, name);
}

Result<Value> get_item(Interpreter& in, const Value& obj, const Value& key) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (obj.is_dict()) {
    const Value* v = obj.as_dict().find(key);
    if (v) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.int_value();
    if (obj.is_list()) {
      const auto& items = obj.as_list().items;
      const auto n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
    } else {
      const std::u32string cps = utf8_decode(obj.as_string());
      const auto n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(utf8_encode(std::u32string(1, cps[static_cast<size_t>(i)])));
    }
  } else if (obj.is_loop() || obj.is_namespace()) {
    // not subscriptable: jinja2 falls back to the attribute below
  }
  if (key.is_string()) {
    if (auto m = python_attr(obj, key.as_string())) return *m;
    if (obj.is_loop() || obj.is_namespace()) return get_attr(in, obj, key.as_string());
    return missing_attr(obj, key.as_string());
  }
  return Value::undefined(fmt::format("{} has no element {}", object_type_repr(obj), repr(key)));
}

Result<Value> get_slice(Interpreter& in, const Value& obj, const Value* start, const Value* stop, const Value* step) {
  (void)in;
  if (obj.is_undefined()) return undefined_error(obj);
  auto bound_value = [](const Value* v) -> Result<std::optional<int64_t>> {
    if (!v || v->is_none()) return std::optional<int64_t>();
    if (!v->is_int() && !v->is_bool()) {
      return invalid_argument("slice indices must be integers or None or have an __index__ method");
    }
    return std::optional<int64_t>(v->int_value());
  };
  TL_ASSIGN_OR_RETURN(auto b, bound_value(start));
  TL_ASSIGN_OR_RETURN(auto e, bound_value(stop));
  TL_ASSIGN_OR_RETURN(auto s, bound_value(step));
  const int64_t st = s.value_or(1);
  if (st == 0) return invalid_argument("slice step cannot be zero");
  std::vector<Value> items;
  std::u32string cps;
  int64_t n;
  if (obj.is_list()) {
    n = static_cast<int64_t>(obj.as_list().items.size());
  } else if (obj.is_string()) {
    cps = utf8_decode(obj.as_string());
    n = static_cast<int64_t>(cps.size());
  } else {
    return Value::undefined(fmt::format("{} has no element slice", object_type_repr(obj)));
  }
  // CPython PySlice_AdjustIndices
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt_pos, int64_t dflt_neg) -> int64_t {
    if (!v) return st > 0 ? dflt_pos : dflt_neg;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t from = adjust(b, 0, n - 1);
  const int64_t to = adjust(e, n, -1);
  std::vector<int64_t> idx;
  if (st > 0) {
    for (int64_t i = from; i < to; i += st) idx.push_back(i);
  } else {
    for (int64_t i = from; i > to; i += st) idx.push_back(i);
  }
  if (obj.is_list()) {
    for (int64_t i : idx) items.push_back(obj.as_list().items[static_cast<size_t>(i)]);
    return Value::list(std::move(items), obj.as_list().is_tuple);
  }
  std::u32string out;
  for (int64_t i : idx) out.push_back(cps[static_cast<size_t>(i)]);
  return Value(utf8_encode(out));
}

Result<std::vector<Value>> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return std::vector<Value>{};
    case Value::Type::kList: return v.as_list().items;
    case Value::Type::kDict: {
      std::vector<Value> keys;
      for (const auto& [k, val] : v.as_dict().entries) keys.push_back(k);
      return keys;
    }
    case Value::Type::kString: {
      std::vector<Value> out;
      for (char32_t c : utf8_decode(v.as_string())) out.emplace_back(utf8_encode(std::u32string(1, c)));
      return out;
    }
    case Value::Type::kLoop: return v.as_loop().items->items;
    default: return invalid_argument("'{}' object is not iterable", type_name(v));
  }
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::kUndefined: return false;
    case Value::Type::kString:
      if (!item.is_string()) {
        return invalid_argument("'in <string>' requires string as left operand, not {}", type_name(item));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Type::kList:
      for (const auto& x : container.as_list().items) {
        if (equals(x, item)) return true;
      }
      return false;
    case Value::Type::kDict: return container.as_dict().find(item) != nullptr;
    default: return invalid_argument("argument of type '{}' is not iterable", type_name(container));
  }
}

Result<Value> negate(const Value& v, bool negative) {
  if (v.is_undefined()) return undefined_error(v);
  if (v.is_float()) return Value(negative ? -v.as_float() : v.as_float());
  if (v.is_int() || v.is_bool()) {
    if (negative && v.int_value() == INT64_MIN) return invalid_argument("integer overflow");
    return Value(negative ? -v.int_value() : v.int_value());
  }
  return invalid_argument("bad operand type for unary {}: '{}'", negative ? "-" : "+", type_name(v));
}

Result<Value> binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) return undefined_error(a);
  if (b.is_undefined()) return undefined_error(b);
  auto unsupported = [&]() {
    return invalid_argument("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
  };
  const bool nums = a.is_number() && b.is_number();
  const bool floats = nums && (a.is_float() || b.is_float());
  auto overflow = []() { return invalid_argument("integer overflow (tuneloop integers are 64-bit)"); };
  if (op == "+") {
    if (floats) return Value(a.float_value() + b.float_value());
    if (nums) {
      int64_t r;
      if (__builtin_add_overflow(a.int_value(), b.int_value(), &r)) return overflow();
      return Value(r);
    }
    if (a.is_string()) {
      if (!b.is_string()) return invalid_argument("can only concatenate str (not \"{}\") to str", type_name(b));
      TL_TRY(in.check_size(a.as_string().size() + b.as_string().size()));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list()) {
      if (!b.is_list() || b.as_list().is_tuple != a.as_list().is_tuple) {
        return invalid_argument("can only concatenate {} (not \"{}\") to {}", type_name(a), type_name(b), type_name(a));
      }
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      TL_TRY(in.check_size(items.size()));
      return Value::list(std::move(items), a.as_list().is_tuple);
    }
    return unsupported();
  }
  if (op == "-") {
    if (floats) return Value(a.float_value() - b.float_value());
    if (nums) {
      int64_t r;
      if (__builtin_sub_overflow(a.int_value(), b.int_value(), &r)) return overflow();
      return Value(r);
    }
    return unsupported();
  }
  if (op == "*") {
    if (floats) return Value(a.float_value() * b.float_value());
    if (nums) {
      int64_t r;
      if (__builtin_mul_overflow(a.int_value(), b.int_value(), &r)) return overflow();
      return Value(r);
    }
    const Value* seq = (a.is_string() || a.is_list()) ? &a : ((b.is_string() || b.is_list()) ? &b : nullptr);
    const Value* count = seq == &a ? &b : &a;
    if (seq) {
      if (!(count->is_int() || count->is_bool())) {
        return invalid_argument("can't multiply sequence by non-int of type '{}'", type_name(*count));
      }
      const int64_t times = std::max<int64_t>(0, count->int_value());
      if (seq->is_string()) {
        const size_t unit = seq->as_string().size();
        if (unit && static_cast<uint64_t>(times) > in.limits().max_output_bytes / unit) TL_TRY(in.check_size(SIZE_MAX));
        std::string out;
        for (int64_t i = 0; i < times; ++i) out += seq->as_string();
        return Value(std::move(out));
      }
      const size_t unit = seq->as_list().items.size();
      if (unit && static_cast<uint64_t>(times) > in.limits().max_output_bytes / unit) TL_TRY(in.check_size(SIZE_MAX));
      std::vector<Value> out;
      for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq->as_list().items.begin(), seq->as_list().items.end());
      return Value::list(std::move(out), seq->as_list().is_tuple);
    }
    return unsupported();
  }
  if (op == "/") {
    if (!nums) return unsupported();
    if (b.float_value() == 0) return invalid_argument("division by zero");
    return Value(a.float_value() / b.float_value());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return percent_format(a.as_string(), b);
    if (!nums) return unsupported();
    if (floats) {
      const double x = a.float_value(), y = b.float_value();
      if (y == 0) return invalid_argument("{}", op == "//" ? "float floor division by zero" : "float modulo");
      double mod = std::fmod(x, y);
      double div = (x - mod) / y;
      if (mod != 0 && ((y < 0) != (mod < 0))) {
        mod += y;
        div -= 1.0;
      }
      if (op == "%") return Value(mod == 0 ? std::copysign(0.0, y) : mod);
      double floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
      if (div == 0) floordiv = std::copysign(0.0, x / y);
      return Value(floordiv);
    }
    const int64_t x = a.int_value(), y = b.int_value();
    if (y == 0) return invalid_argument("{}", op == "//" ? "integer division or modulo by zero" : "integer modulo by zero");
    if (x == INT64_MIN && y == -1) return overflow();
    int64_t q = x / y, r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) {
      r += y;
      q -= 1;
    }
    return Value(op == "//" ? q : r);
  }
  if (op == "**") {
    if (!nums) return unsupported();
    if (!floats && b.int_value() >= 0) {
      int64_t base = a.int_value(), exp = b.int_value(), r = 1;
      while (exp > 0) {
        if (exp & 1) {
          if (__builtin_mul_overflow(r, base, &r)) return overflow();
        }
        exp >>= 1;
        if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return overflow();
      }
      return Value(r);
    }
    if (a.float_value() == 0 && b.float_value() < 0) {
      return invalid_argument("0.0 cannot be raised to a negative power");
    }
    return Value(std::pow(a.float_value(), b.float_value()));
  }
  return internal_error("unknown operator {}", op);
}

void add_globals(Frame& frame) {
  frame.vars["range"] = Value(method("range", [](Interpreter& in, CallArgs& a) -> Result<Value> {
    if (!a.kwargs.empty()) return invalid_argument("range() takes no keyword arguments");
    if (a.args.empty() || a.args.size() > 3) return invalid_argument("range expected 1 to 3 arguments, got {}", a.args.size());
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < a.args.size(); ++i) {
      if (!a.args[i].is_int() && !a.args[i].is_bool()) {
        return invalid_argument("'{}' object cannot be interpreted as an integer", type_name(a.args[i]));
      }
    }
    if (a.args.size() == 1) {
      v[1] = a.args[0].int_value();
    } else {
      v[0] = a.args[0].int_value();
      v[1] = a.args[1].int_value();
      if (a.args.size() == 3) v[2] = a.args[2].int_value();
    }
    if (v[2] == 0) return invalid_argument("range() arg 3 must not be zero");
    std::vector<Value> out;
    for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
      if (out.size() >= 100000) {
        return invalid_argument("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      }
      out.emplace_back(i);
      TL_TRY(in.step());
    }
    return Value::list(std::move(out));
  }));
  auto make_dict = [](const char* what) {
    return [what](Interpreter&, CallArgs& a) -> Result<Value> {
      auto d = std::make_shared<DictData>();
      if (a.args.size() > 1) return invalid_argument("{} expected at most 1 argument, got {}", what, a.args.size());
      if (a.args.size() == 1) {
        const Value& src = a.args[0];
        if (src.is_dict()) {
          *d = src.as_dict();
        } else {
          TL_ASSIGN_OR_RETURN(auto items, iterate(src));
          for (const auto& item : items) {
            if (!item.is_list() || item.as_list().items.size() != 2) {
              return invalid_argument("dictionary update sequence element has wrong length; 2 is required");
            }
            d->set(item.as_list().items[0], item.as_list().items[1]);
          }
        }
      }
      for (const auto& [k, v] : a.kwargs) d->set(Value(k), v);
      return Value(std::move(d));
    };
  };
  frame.vars["dict"] = Value(method("dict", make_dict("dict")));
  frame.vars["namespace"] = Value(method("namespace", [make_dict](Interpreter& in, CallArgs& a) -> Result<Value> {
    TL_ASSIGN_OR_RETURN(Value d, make_dict("namespace")(in, a));
    auto ns = std::make_shared<NamespaceData>();
    ns->attrs = d.as_dict();
    in.track(ns);
    return Value(std::move(ns));
  }));
  frame.vars["raise_exception"] = Value(method("raise_exception", [](Interpreter& in, CallArgs& a) -> Result<Value> {
    // transformers: raise TemplateError(message) — the message is the whole error.
    const std::string msg = a.args.empty() ? std::string() : to_str(a.args[0]);
    return in.raise(invalid_argument("{}", msg));
  }));
  frame.vars["strftime_now"] = Value(method("strftime_now", [](Interpreter& in, CallArgs& a) -> Result<Value> {
    TL_ASSIGN_OR_RETURN(auto b, bind(a, {"format"}, "strftime_now"));
    TL_ASSIGN_OR_RETURN(std::string f, str_arg(b[0], "strftime_now() format"));
    std::tm tm{};
    if (in.now_utc()) {
      const std::time_t t = static_cast<std::time_t>(*in.now_utc());
      gmtime_r(&t, &tm);
    } else {
      const std::time_t t = std::time(nullptr);
      localtime_r(&t, &tm);
    }
    // datetime.strftime on a naive datetime: %f is microseconds (0 here), %z and %Z are empty.
    std::string spec;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] == '%' && i + 1 < f.size()) {
        const char c = f[i + 1];
        if (c == 'f') spec += "000000";
        else if (c == 'z' || c == 'Z') {
        } else {
          spec += f.substr(i, 2);
        }
        ++i;
      } else {
        spec.push_back(f[i]);
      }
    }
    if (spec.empty()) return Value(std::string());
    std::string out(spec.size() * 8 + 64, '\0');
    const size_t n = std::strftime(out.data(), out.size(), spec.c_str(), &tm);
    out.resize(n);
    return Value(std::move(out));
  }));
}

}  // namespace tl::jinja
