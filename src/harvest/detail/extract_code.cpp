// Tree-sitter extraction of functions, classes, calls, imports and string literals for every code
// language harvest supports.
//
// One generic walker serves all languages: each language contributes a table of node-type names per
// category (function, class, call, import, decision point, ...). At first use the names are mapped to
// grammar symbol ids, so the walk itself compares small integers instead of strings — the walk is the
// hot loop of `harvest` (target: 50k LOC/s parse+graph on 2 cores). Anything a grammar does not have
// (a name that is not a symbol of that grammar) is simply never matched.
#include <tree_sitter/api.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/check.h"
#include "harvest/detail/extract.h"

namespace tl::harvest::detail {

namespace {

enum Category : uint16_t {
  kFunction = 1 << 0,
  kClass = 1 << 1,
  kCall = 1 << 2,
  kImport = 1 << 3,
  kDecision = 1 << 4,   // +1 complexity
  kLogical = 1 << 5,    // +1 per `&&`/`||`/`and`/`or`/`??` child token
  kString = 1 << 6,
  kComment = 1 << 7,
  kHandler = 1 << 8,    // error handling
  kGoIf = 1 << 9,       // Go if_statement: `if err != nil` counts as error handling
};

// libtree-sitter 0.20.7 has no ts_node_is_error(); ERROR nodes carry the builtin symbol (TSSymbol)-1.
constexpr TSSymbol kErrorSymbol = static_cast<TSSymbol>(-1);

struct LangSpec {
  std::vector<const char*> functions, classes, calls, imports, decisions, logical, strings, comments, handlers;
  bool python_docstrings = false;
};

LangSpec spec_for(Language lang) {
  LangSpec s;
  switch (lang) {
    case Language::kPython:
      s.functions = {"function_definition"};
      s.classes = {"class_definition"};
      s.calls = {"call"};
      s.imports = {"import_statement", "import_from_statement"};
      s.decisions = {"if_statement", "elif_clause", "for_statement", "while_statement", "except_clause",
                     "conditional_expression", "for_in_clause", "if_clause", "case_clause"};
      s.logical = {"boolean_operator"};
      s.strings = {"string"};
      s.comments = {"comment"};
      s.handlers = {"except_clause"};
      s.python_docstrings = true;
      break;
    case Language::kC:
    case Language::kCpp:
      s.functions = {"function_definition"};
      s.classes = {"struct_specifier", "class_specifier"};
      s.calls = {"call_expression"};
      s.imports = {"preproc_include"};
      s.decisions = {"if_statement", "for_statement", "for_range_loop", "while_statement", "do_statement",
                     "case_statement", "conditional_expression", "catch_clause"};
      s.logical = {"binary_expression"};
      s.strings = {"string_literal", "raw_string_literal"};
      s.comments = {"comment"};
      s.handlers = {"catch_clause"};
      break;
    case Language::kJavaScript:
    case Language::kTypeScript:
    case Language::kTsx:
      s.functions = {"function_declaration", "generator_function_declaration", "method_definition",
                     "arrow_function", "function_expression", "function"};
      s.classes = {"class_declaration", "abstract_class_declaration", "interface_declaration", "class"};
      s.calls = {"call_expression"};
      s.imports = {"import_statement"};
      s.decisions = {"if_statement", "for_statement", "for_in_statement", "while_statement", "do_statement",
                     "switch_case", "catch_clause", "ternary_expression"};
      s.logical = {"binary_expression"};
      s.strings = {"string", "template_string"};
      s.comments = {"comment"};
      s.handlers = {"catch_clause"};
      break;
    case Language::kGo:
      s.functions = {"function_declaration", "method_declaration"};
      s.classes = {"type_spec"};
      s.calls = {"call_expression"};
      s.imports = {"import_declaration"};
      s.decisions = {"if_statement", "for_statement", "expression_case", "type_case", "communication_case"};
      s.logical = {"binary_expression"};
      s.strings = {"interpreted_string_literal", "raw_string_literal"};
      s.comments = {"comment"};
      break;
    case Language::kRust:
      s.functions = {"function_item"};
      s.classes = {"struct_item", "enum_item", "trait_item"};
      s.calls = {"call_expression"};
      s.imports = {"use_declaration"};
      s.decisions = {"if_expression", "while_expression", "for_expression", "match_arm", "try_expression"};
      s.logical = {"binary_expression"};
      s.strings = {"string_literal", "raw_string_literal"};
      s.comments = {"line_comment", "block_comment"};
      s.handlers = {"try_expression"};
      break;
    case Language::kJava:
      s.functions = {"method_declaration", "constructor_declaration"};
      s.classes = {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"};
      s.calls = {"method_invocation"};
      s.imports = {"import_declaration"};
      s.decisions = {"if_statement", "for_statement", "enhanced_for_statement", "while_statement", "do_statement",
                     "catch_clause", "ternary_expression", "switch_label"};
      s.logical = {"binary_expression"};
      s.strings = {"string_literal"};
      s.comments = {"line_comment", "block_comment"};
      s.handlers = {"catch_clause"};
      break;
    case Language::kBash:
      s.functions = {"function_definition"};
      s.calls = {"command"};
      s.decisions = {"if_statement", "elif_clause", "for_statement", "c_style_for_statement", "while_statement",
                     "case_item"};
      s.logical = {"list"};
      s.strings = {"string", "raw_string"};
      s.comments = {"comment"};
      break;
    default:
      break;
  }
  return s;
}

// Symbol → category bits, plus the field ids the walker asks for, for one grammar.
struct Compiled {
  const TSLanguage* ts = nullptr;
  std::vector<uint16_t> cat;
  bool python_docstrings = false;
  TSFieldId f_name = 0, f_body = 0, f_parameters = 0, f_declarator = 0, f_function = 0, f_object = 0,
            f_superclasses = 0, f_superclass = 0, f_interfaces = 0, f_type = 0, f_key = 0, f_left = 0,
            f_condition = 0, f_property = 0, f_receiver = 0, f_macro = 0;
};

TSFieldId field(const TSLanguage* ts, const char* name) {
  return ts_language_field_id_for_name(ts, name, static_cast<uint32_t>(std::strlen(name)));
}

const Compiled& compiled_for(Language lang) {
  static std::mutex mu;
  static std::array<std::unique_ptr<Compiled>, 32> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[static_cast<size_t>(lang)];
  if (slot) return *slot;
  auto c = std::make_unique<Compiled>();
  c->ts = tree_sitter_language(lang);
  TL_CHECK(c->ts != nullptr);  // callers only pass code languages (is_code)
  LangSpec s = spec_for(lang);
  c->python_docstrings = s.python_docstrings;
  uint32_t n = ts_language_symbol_count(c->ts);
  c->cat.assign(n, 0);
  auto mark = [&](const std::vector<const char*>& names, uint16_t bit) {
    for (uint32_t sym = 0; sym < n; ++sym) {
      if (ts_language_symbol_type(c->ts, static_cast<TSSymbol>(sym)) != TSSymbolTypeRegular) continue;
      const char* sname = ts_language_symbol_name(c->ts, static_cast<TSSymbol>(sym));
      for (const char* want : names) {
        if (std::strcmp(sname, want) == 0) c->cat[sym] |= bit;
      }
    }
  };
  mark(s.functions, kFunction);
  mark(s.classes, kClass);
  mark(s.calls, kCall);
  mark(s.imports, kImport);
  mark(s.decisions, kDecision);
  mark(s.logical, kLogical);
  mark(s.strings, kString);
  mark(s.comments, kComment);
  mark(s.handlers, kHandler);
  if (lang == Language::kGo) mark({"if_statement"}, kGoIf);
  c->f_name = field(c->ts, "name");
  c->f_body = field(c->ts, "body");
  c->f_parameters = field(c->ts, "parameters");
  c->f_declarator = field(c->ts, "declarator");
  c->f_function = field(c->ts, "function");
  c->f_object = field(c->ts, "object");
  c->f_superclasses = field(c->ts, "superclasses");
  c->f_superclass = field(c->ts, "superclass");
  c->f_interfaces = field(c->ts, "interfaces");
  c->f_type = field(c->ts, "type");
  c->f_key = field(c->ts, "key");
  c->f_left = field(c->ts, "left");
  c->f_condition = field(c->ts, "condition");
  c->f_property = field(c->ts, "property");
  c->f_receiver = field(c->ts, "receiver");
  c->f_macro = field(c->ts, "macro");
  slot = std::move(c);
  return *slot;
}

bool is_ident_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '$';
}

std::string collapse_ws(std::string_view s, size_t max_len) {
  std::string out;
  bool space = false;
  for (char ch : s) {
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
    if (out.size() >= max_len) break;
  }
  return out;
}

std::vector<std::string> ident_tokens(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    if (!is_ident_char(s[i])) { ++i; continue; }
    size_t j = i;
    while (j < s.size() && is_ident_char(s[j])) ++j;
    out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// Strips comment markers from one comment or a run of them: //, /* */, #, ///, //!, leading '*'.
std::string clean_comment(std::string_view raw) {
  std::string out;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t nl = raw.find('\n', pos);
    std::string_view line = raw.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    size_t b = line.find_first_not_of(" \t\r");
    line = b == std::string_view::npos ? std::string_view{} : line.substr(b);
    auto strip_prefix = [&](std::string_view p) {
      if (line.starts_with(p)) line.remove_prefix(p.size());
    };
    strip_prefix("/**");
    strip_prefix("/*");
    strip_prefix("///");
    strip_prefix("//!");
    strip_prefix("//");
    strip_prefix("*/");
    if (line.starts_with("*") && !line.starts_with("*/")) line.remove_prefix(1);
    if (line.starts_with("#!")) line = {};  // shebang
    while (line.starts_with("#")) line.remove_prefix(1);
    if (line.ends_with("*/")) line.remove_suffix(2);
    size_t f = line.find_first_not_of(" \t");
    size_t l = line.find_last_not_of(" \t\r");
    if (f != std::string_view::npos) {
      if (!out.empty()) out += '\n';
      out.append(line.substr(f, l - f + 1));
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return out;
}

std::string strip_quotes(std::string_view s) {
  size_t b = 0;
  while (b < s.size() && (s[b] == 'r' || s[b] == 'b' || s[b] == 'u' || s[b] == 'f' || s[b] == 'R' || s[b] == 'B' ||
                          s[b] == 'U' || s[b] == 'F' || s[b] == 'L' || s[b] == '@'))
    ++b;
  size_t e = s.size();
  while (b < e && (s[b] == '"' || s[b] == '\'' || s[b] == '`')) ++b;
  while (e > b && (s[e - 1] == '"' || s[e - 1] == '\'' || s[e - 1] == '`')) --e;
  return std::string(s.substr(b, e - b));
}

std::string dedent_docstring(std::string_view s) {
  // Trim each line, drop leading/trailing blank lines: enough for prompts built from it.
  std::string out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t nl = s.find('\n', pos);
    std::string_view line = s.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    size_t f = line.find_first_not_of(" \t\r");
    size_t l = line.find_last_not_of(" \t\r");
    if (f != std::string_view::npos) {
      if (!out.empty()) out += '\n';
      out.append(line.substr(f, l - f + 1));
    } else if (!out.empty()) {
      out += '\n';
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Walker {
 public:
  Walker(const Compiled& c, std::string_view text, FileFacts& facts)
      : c_(c), text_(text), facts_(facts), f_pattern_(field(c.ts, "pattern")) {}

  void walk(TSTreeCursor* cursor) {
    TSNode n = ts_tree_cursor_current_node(cursor);
    bool is_error = ts_node_symbol(n) == kErrorSymbol;
    if (is_error || ts_node_is_missing(n)) {
      facts_.has_error = true;
      if (error_depth_ == 0) facts_.error_bytes += ts_node_end_byte(n) - ts_node_start_byte(n);
      mark_error();
    }
    TSSymbol sym = ts_node_symbol(n);
    uint16_t cat = sym < c_.cat.size() ? c_.cat[sym] : 0;
    int pushed_fn = -1, pushed_cls = -1;
    if (cat != 0 && ts_node_is_named(n)) {
      if (cat & kComment) return;
      if (cat & kString) {
        record_string(n);
        return;
      }
      if (cat & kImport) {
        record_import(n);
        return;
      }
      if (cat & kFunction) pushed_fn = begin_function(n);
      if (cat & kClass) pushed_cls = begin_class(n);
      if (!fn_stack_.empty()) {
        RawFunction& f = facts_.functions[static_cast<size_t>(fn_stack_.back())];
        if (cat & kDecision) ++f.complexity;
        if (cat & kLogical) f.complexity += count_logical(n);
        if (cat & kHandler) ++f.error_handlers;
        if ((cat & kGoIf) && is_go_err_check(n)) ++f.error_handlers;
      }
      if (cat & kCall) record_call(n);
    }
    bool in_error = is_error;
    if (in_error) ++error_depth_;
    if (ts_tree_cursor_goto_first_child(cursor)) {
      do {
        walk(cursor);
      } while (ts_tree_cursor_goto_next_sibling(cursor));
      ts_tree_cursor_goto_parent(cursor);
    }
    if (in_error) --error_depth_;
    if (pushed_fn >= 0) fn_stack_.pop_back();
    if (pushed_cls >= 0) cls_stack_.pop_back();
  }

 private:
  std::string_view text(TSNode n) const {
    uint32_t b = ts_node_start_byte(n), e = ts_node_end_byte(n);
    if (b > text_.size() || e > text_.size() || e < b) return {};
    return text_.substr(b, e - b);
  }
  static int line_of(TSNode n) { return static_cast<int>(ts_node_start_point(n).row) + 1; }
  static int end_line_of(TSNode n) {
    TSPoint p = ts_node_end_point(n);
    // A node ending at column 0 ends on the previous line (its trailing newline).
    return static_cast<int>(p.row) + (p.column == 0 && p.row > 0 ? 0 : 1);
  }
  TSNode child(TSNode n, TSFieldId f) const {
    if (f == 0) return TSNode{};
    return ts_node_child_by_field_id(n, f);
  }

  void mark_error() {
    for (int idx : fn_stack_) facts_.functions[static_cast<size_t>(idx)].parse_error = true;
  }

  int count_logical(TSNode n) const {
    int count = 0;
    uint32_t k = ts_node_child_count(n);
    for (uint32_t i = 0; i < k; ++i) {
      TSNode ch = ts_node_child(n, i);
      if (ts_node_is_named(ch)) continue;
      const char* t = ts_node_type(ch);
      if (!std::strcmp(t, "&&") || !std::strcmp(t, "||") || !std::strcmp(t, "and") || !std::strcmp(t, "or") ||
          !std::strcmp(t, "??"))
        ++count;
    }
    return count;
  }

  bool is_go_err_check(TSNode n) const {
    TSNode cond = child(n, c_.f_condition);
    if (ts_node_is_null(cond)) return false;
    std::string_view t = text(cond);
    return t.find("err != nil") != std::string_view::npos;
  }

  // The name of a C/C++ declarator chain: function_declarator → (pointer_declarator …) → identifier.
  std::string declarator_name(TSNode n, std::string* scope) const {
    for (int depth = 0; depth < 8 && !ts_node_is_null(n); ++depth) {
      const char* t = ts_node_type(n);
      if (!std::strcmp(t, "identifier") || !std::strcmp(t, "field_identifier") ||
          !std::strcmp(t, "destructor_name") || !std::strcmp(t, "operator_name")) {
        return std::string(text(n));
      }
      if (!std::strcmp(t, "qualified_identifier")) {
        std::string full(text(n));
        size_t p = full.rfind("::");
        if (p == std::string::npos) return full;
        if (scope) *scope = full.substr(0, p);
        return full.substr(p + 2);
      }
      TSNode next = child(n, c_.f_declarator);
      if (ts_node_is_null(next)) next = ts_node_named_child(n, 0);
      n = next;
    }
    return {};
  }

  // Names for function nodes that have no `name` field: JS/TS arrow functions and function expressions
  // take the name they are bound to (const f = () => …, obj = {f: …}, this.f = function …).
  std::string bound_name(TSNode n) const {
    TSNode p = ts_node_parent(n);
    if (ts_node_is_null(p)) return {};
    const char* t = ts_node_type(p);
    TSNode target{};
    if (!std::strcmp(t, "variable_declarator") || !std::strcmp(t, "public_field_definition") ||
        !std::strcmp(t, "field_definition")) {
      target = child(p, c_.f_name);
      if (ts_node_is_null(target)) target = child(p, c_.f_property);
    } else if (!std::strcmp(t, "pair")) {
      target = child(p, c_.f_key);
    } else if (!std::strcmp(t, "assignment_expression")) {
      target = child(p, c_.f_left);
    }
    if (ts_node_is_null(target)) return {};
    std::string_view s = text(target);
    size_t e = s.size();
    size_t b = e;
    while (b > 0 && is_ident_char(s[b - 1])) --b;
    return std::string(s.substr(b, e - b));
  }

  std::string leading_comment(TSNode n) const {
    // Wrappers (decorators, export, template<>) carry the comment in front of them.
    TSNode target = n;
    for (int i = 0; i < 2; ++i) {
      TSNode p = ts_node_parent(target);
      if (ts_node_is_null(p)) break;
      const char* t = ts_node_type(p);
      if (!std::strcmp(t, "decorated_definition") || !std::strcmp(t, "export_statement") ||
          !std::strcmp(t, "template_declaration") || !std::strcmp(t, "lexical_declaration") ||
          !std::strcmp(t, "variable_declarator")) {
        target = p;
      } else {
        break;
      }
    }
    std::vector<TSNode> run;
    int expect_row = static_cast<int>(ts_node_start_point(target).row);
    TSNode s = ts_node_prev_sibling(target);
    while (!ts_node_is_null(s)) {
      TSSymbol sym = ts_node_symbol(s);
      bool comment = sym < c_.cat.size() && (c_.cat[sym] & kComment);
      if (!comment) {
        // Rust attributes / Java annotations sit between the doc comment and the item.
        const char* t = ts_node_type(s);
        if (!std::strcmp(t, "attribute_item")) {
          expect_row = static_cast<int>(ts_node_start_point(s).row);
          s = ts_node_prev_sibling(s);
          continue;
        }
        break;
      }
      int end_row = static_cast<int>(ts_node_end_point(s).row);
      if (ts_node_end_point(s).column == 0) --end_row;
      if (end_row + 1 < expect_row) break;
      run.push_back(s);
      expect_row = static_cast<int>(ts_node_start_point(s).row);
      s = ts_node_prev_sibling(s);
    }
    if (run.empty()) return {};
    std::string out;
    for (auto it = run.rbegin(); it != run.rend(); ++it) {
      std::string part = clean_comment(text(*it));
      if (part.empty()) continue;
      if (!out.empty()) out += '\n';
      out += part;
    }
    return out;
  }

  // `stmt` (may be null) receives the docstring's expression statement, for callers that cut it out.
  std::string python_docstring(TSNode body, TSNode* stmt = nullptr) const {
    if (ts_node_is_null(body) || ts_node_named_child_count(body) == 0) return {};
    TSNode first = ts_node_named_child(body, 0);
    if (std::strcmp(ts_node_type(first), "expression_statement") != 0) return {};
    TSNode str = ts_node_named_child(first, 0);
    if (ts_node_is_null(str) || std::strcmp(ts_node_type(str), "string") != 0) return {};
    if (stmt) *stmt = first;
    return dedent_docstring(strip_quotes(text(str)));
  }

  std::vector<std::string> parameter_names(TSNode params) const {
    std::vector<std::string> out;
    if (ts_node_is_null(params)) return out;
    uint32_t k = ts_node_named_child_count(params);
    for (uint32_t i = 0; i < k; ++i) {
      TSNode p = ts_node_named_child(params, i);
      TSSymbol sym = ts_node_symbol(p);
      if (sym < c_.cat.size() && (c_.cat[sym] & kComment)) continue;
      std::string nm;
      TSNode decl = child(p, c_.f_declarator);
      TSNode name = child(p, c_.f_name);
      TSNode pattern = child(p, f_pattern_);
      if (!ts_node_is_null(decl)) {
        nm = declarator_name(decl, nullptr);  // C/C++: "const char *path" -> path
      } else if (!ts_node_is_null(name)) {
        nm = std::string(text(name));  // Go, Java
      } else if (!ts_node_is_null(pattern)) {
        auto toks = ident_tokens(text(pattern));  // Rust, TS
        if (!toks.empty()) nm = toks.front();
      } else {
        auto toks = ident_tokens(text(p));  // Python identifier / typed / default parameters, JS
        if (!toks.empty()) nm = toks.front();
      }
      if (nm.empty() || nm == "self" || nm == "cls" || nm == "void" || nm == "mut") continue;
      out.push_back(nm);
    }
    return out;
  }

  int begin_function(TSNode n) {
    TSNode body = child(n, c_.f_body);
    if (ts_node_is_null(body)) return -1;  // a declaration/prototype, not a definition
    std::string scope;
    std::string name;
    TSNode name_node = child(n, c_.f_name);
    if (!ts_node_is_null(name_node)) {
      name = std::string(text(name_node));
    } else {
      TSNode decl = child(n, c_.f_declarator);
      if (!ts_node_is_null(decl)) name = declarator_name(decl, &scope);
      if (name.empty()) name = bound_name(n);
    }
    if (name.empty()) return -1;  // anonymous lambda: its body counts toward the enclosing function
    RawFunction f;
    f.name = name;
    std::string cls;
    if (!cls_stack_.empty()) {
      f.class_index = cls_stack_.back();
      cls = facts_.classes[static_cast<size_t>(f.class_index)].qualified_name;
    } else if (!scope.empty()) {
      cls = scope;
    }
    // Go methods: func (r *Repo) Save() → Repo.Save
    TSNode recv = child(n, c_.f_receiver);
    if (!ts_node_is_null(recv)) {
      auto toks = ident_tokens(text(recv));
      if (!toks.empty()) cls = toks.back();
    }
    f.qualified_name = cls.empty() ? name : cls + "." + name;
    if (!fn_stack_.empty() && cls_stack_.empty()) {
      f.qualified_name = facts_.functions[static_cast<size_t>(fn_stack_.back())].qualified_name + "." + name;
    }
    // Decorators/attributes belong to the function's text.
    TSNode outer = n;
    TSNode p = ts_node_parent(n);
    if (!ts_node_is_null(p) && !std::strcmp(ts_node_type(p), "decorated_definition")) outer = p;
    f.start_line = line_of(outer);
    f.end_line = end_line_of(n);
    uint32_t sb = ts_node_start_byte(n), bb = ts_node_start_byte(body);
    f.signature = collapse_ws(text_.substr(sb, bb > sb ? bb - sb : 0), 400);
    while (!f.signature.empty() && (f.signature.back() == ':' || f.signature.back() == '{' ||
                                    f.signature.back() == ' ' || f.signature.back() == '='))
      f.signature.pop_back();
    if (f.signature.ends_with("=>")) {
      f.signature.resize(f.signature.size() - 2);
      while (!f.signature.empty() && f.signature.back() == ' ') f.signature.pop_back();
    }
    f.body = std::string(text(outer));
    TSNode doc_stmt{};
    f.docstring = c_.python_docstrings ? python_docstring(body, &doc_stmt) : std::string();
    if (!f.docstring.empty() && !ts_node_is_null(doc_stmt)) {
      // Offsets within body, so the implement example can answer with the code minus the docstring the
      // question already gave.
      uint32_t ob = ts_node_start_byte(outer);
      f.doc_begin = static_cast<int>(ts_node_start_byte(doc_stmt) - ob);
      f.doc_end = static_cast<int>(ts_node_end_byte(doc_stmt) - ob);
    }
    if (f.docstring.empty()) f.docstring = leading_comment(n);
    TSNode params = child(n, c_.f_parameters);
    // C/C++ keep the parameter list on the function_declarator inside the declarator chain.
    for (TSNode d = child(n, c_.f_declarator); ts_node_is_null(params) && !ts_node_is_null(d);
         d = child(d, c_.f_declarator)) {
      params = child(d, c_.f_parameters);
    }
    f.params = parameter_names(params);
    if (ts_node_is_null(name_node) && ts_node_is_null(child(n, c_.f_declarator))) {
      f.signature = name + " = " + f.signature;  // arrow functions / function expressions bound to a name
    }
    // Tests: naming conventions, Rust #[test], Java @Test.
    bool test_name = name.starts_with("test") || name.starts_with("Test") || name.ends_with("_test");
    f.is_test = (facts_.is_test_file && test_name) || f.body.starts_with("@Test") ||
                f.body.find("@Test\n") != std::string::npos;
    if (facts_.language == Language::kRust) {
      TSNode prev = ts_node_prev_named_sibling(n);
      if (!ts_node_is_null(prev) && !std::strcmp(ts_node_type(prev), "attribute_item") &&
          text(prev).find("test") != std::string_view::npos)
        f.is_test = true;
    }
    facts_.functions.push_back(std::move(f));
    int idx = static_cast<int>(facts_.functions.size()) - 1;
    fn_stack_.push_back(idx);
    return idx;
  }

  int begin_class(TSNode n) {
    TSNode name_node = child(n, c_.f_name);
    if (ts_node_is_null(name_node)) return -1;
    // C/C++ struct references ("struct foo *p") have no body; Go type_spec only counts for struct and
    // interface types.
    TSNode body = child(n, c_.f_body);
    TSNode type = child(n, c_.f_type);
    if (facts_.language == Language::kGo) {
      if (ts_node_is_null(type)) return -1;
      const char* t = ts_node_type(type);
      if (std::strcmp(t, "struct_type") != 0 && std::strcmp(t, "interface_type") != 0) return -1;
    } else if (ts_node_is_null(body) && facts_.language != Language::kRust) {
      return -1;
    }
    RawClass k;
    k.name = std::string(text(name_node));
    k.qualified_name = cls_stack_.empty() ? k.name
                                          : facts_.classes[static_cast<size_t>(cls_stack_.back())].qualified_name +
                                                "." + k.name;
    k.start_line = line_of(n);
    k.end_line = end_line_of(n);
    k.body = std::string(text(n).substr(0, 4000));
    k.docstring = c_.python_docstrings ? python_docstring(body) : std::string();
    if (k.docstring.empty()) k.docstring = leading_comment(n);
    for (TSFieldId f : {c_.f_superclasses, c_.f_superclass, c_.f_interfaces}) {
      TSNode b = child(n, f);
      if (ts_node_is_null(b)) continue;
      for (auto& tok : ident_tokens(text(b))) {
        if (tok != "extends" && tok != "implements" && tok != "object" && tok != "metaclass") k.bases.push_back(tok);
      }
    }
    if (facts_.language == Language::kCpp || facts_.language == Language::kJavaScript ||
        facts_.language == Language::kTypeScript || facts_.language == Language::kTsx) {
      // base_class_clause / class_heritage are unnamed-field children.
      uint32_t cc = ts_node_named_child_count(n);
      for (uint32_t i = 0; i < cc; ++i) {
        TSNode ch = ts_node_named_child(n, i);
        const char* t = ts_node_type(ch);
        if (!std::strcmp(t, "base_class_clause") || !std::strcmp(t, "class_heritage")) {
          for (auto& tok : ident_tokens(text(ch))) {
            if (tok != "public" && tok != "private" && tok != "protected" && tok != "virtual" && tok != "extends" &&
                tok != "implements")
              k.bases.push_back(tok);
          }
        }
      }
    }
    facts_.classes.push_back(std::move(k));
    int idx = static_cast<int>(facts_.classes.size()) - 1;
    cls_stack_.push_back(idx);
    return idx;
  }

  void record_call(TSNode n) {
    TSNode callee = child(n, c_.f_function);
    TSNode object{};
    if (ts_node_is_null(callee)) {
      callee = child(n, c_.f_name);  // Java method_invocation, Bash command
      object = child(n, c_.f_object);
    }
    if (ts_node_is_null(callee)) callee = child(n, c_.f_macro);
    if (ts_node_is_null(callee)) return;
    std::string_view t = text(callee);
    // Strip generic/template arguments at the end: foo<int>(), foo::<T>().
    if (!t.empty() && t.back() == '>') {
      size_t lt = t.find('<');
      if (lt != std::string_view::npos) t = t.substr(0, lt);
      if (t.ends_with("::")) t.remove_suffix(2);
    }
    size_t e = t.size();
    size_t b = e;
    while (b > 0 && is_ident_char(t[b - 1])) --b;
    if (b == e) return;
    RawCall call;
    call.function_index = fn_stack_.empty() ? -1 : fn_stack_.back();
    call.name = std::string(t.substr(b, e - b));
    std::string_view recv = t.substr(0, b);
    while (!recv.empty() && (recv.back() == '.' || recv.back() == ':' || recv.back() == '>' || recv.back() == '-'))
      recv.remove_suffix(1);
    if (!ts_node_is_null(object)) recv = text(object);
    call.receiver = collapse_ws(recv, 60);
    // Python classmethods construct through `cls(...)`: that is a call of the enclosing class, not of
    // something named "cls" (which would never resolve).
    if (facts_.language == Language::kPython && call.name == "cls" && call.receiver.empty() && !cls_stack_.empty()) {
      call.name = facts_.classes[static_cast<size_t>(cls_stack_.back())].name;
      call.receiver = "cls";
    }
    call.line = line_of(n);
    if (facts_.language == Language::kBash && (call.name == "source" || call.name == ".")) {
      RawImport imp;
      imp.text = collapse_ws(text(n), 200);
      imp.tokens = ident_tokens(imp.text);
      imp.line = call.line;
      facts_.imports.push_back(std::move(imp));
      return;
    }
    facts_.calls.push_back(std::move(call));
  }

  void record_import(TSNode n) {
    RawImport imp;
    imp.text = collapse_ws(text(n), 200);
    imp.tokens = ident_tokens(imp.text);
    imp.line = line_of(n);
    facts_.imports.push_back(std::move(imp));
  }

  void record_string(TSNode n) {
    std::string_view raw = text(n);
    if (raw.size() < 3 || raw.size() > 130 || raw.find('\n') != std::string_view::npos) return;
    RawString s;
    s.function_index = fn_stack_.empty() ? -1 : fn_stack_.back();
    s.value = strip_quotes(raw);
    if (s.value.size() < 2) return;
    s.line = line_of(n);
    facts_.strings.push_back(std::move(s));
  }

  const Compiled& c_;
  std::string_view text_;
  FileFacts& facts_;
  std::vector<int> fn_stack_;
  std::vector<int> cls_stack_;
  int error_depth_ = 0;
  TSFieldId f_pattern_ = 0;
};

struct ParserDeleter {
  void operator()(TSParser* p) const { ts_parser_delete(p); }
};
struct TreeDeleter {
  void operator()(TSTree* t) const { ts_tree_delete(t); }
};

}  // namespace

bool is_test_path(std::string_view path) {
  size_t slash = path.find_last_of('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  std::string_view dir = slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash + 1);
  std::string d;
  d.reserve(dir.size() + 1);
  d += '/';
  d.append(dir);
  if (d.find("/test/") != std::string::npos || d.find("/tests/") != std::string::npos ||
      d.find("/__tests__/") != std::string::npos || d.find("/spec/") != std::string::npos)
    return true;
  size_t dot = base.find('.');
  std::string_view stem = dot == std::string_view::npos ? base : base.substr(0, dot);
  return stem.starts_with("test_") || stem.ends_with("_test") || stem.ends_with("Test") || stem.ends_with("Tests") ||
         base.find(".test.") != std::string_view::npos || base.find(".spec.") != std::string_view::npos ||
         stem == "test" || stem == "tests";
}

bool extract_code(std::string_view text, FileFacts& facts, std::string& why) {
  const Compiled& c = compiled_for(facts.language);
  // One parser per thread, reused across files: creating one costs more than parsing a small file.
  thread_local std::unique_ptr<TSParser, ParserDeleter> parser(ts_parser_new());
  if (!ts_parser_set_language(parser.get(), c.ts)) {
    why = "grammar ABI not accepted by libtree-sitter";
    return false;
  }
  std::unique_ptr<TSTree, TreeDeleter> tree(
      ts_parser_parse_string(parser.get(), nullptr, text.data(), static_cast<uint32_t>(text.size())));
  if (!tree) {
    why = "tree-sitter returned no tree";
    return false;
  }
  facts.is_test_file = is_test_path(facts.path);
  Walker walker(c, text, facts);
  TSTreeCursor cursor = ts_tree_cursor_new(ts_tree_root_node(tree.get()));
  walker.walk(&cursor);
  ts_tree_cursor_delete(&cursor);
  return true;
}

}  // namespace tl::harvest::detail
