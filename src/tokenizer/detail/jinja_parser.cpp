// Recursive-descent parser mirroring jinja2's parser.py function by function (parse_condexpr,
// parse_or, ..., parse_unary, parse_filter_expr, parse_test), so precedence and binding match:
// `a + b | trim` is `a + (b | trim)`, `not x is defined` is `not (x is defined)`, `**` is
// left-associative. Error texts follow jinja2's where one exists.
#include "tokenizer/detail/jinja_parser.h"

#include <set>

#include "tokenizer/detail/jinja_builtins.h"
#include "tokenizer/detail/jinja_lexer.h"
#include "tokenizer/detail/jinja_text.h"

namespace tl::jinja {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& origin) : toks_(std::move(tokens)), origin_(origin) {}

  Result<std::shared_ptr<const TemplateAst>> run() {
    auto ast = std::make_shared<TemplateAst>();
    TL_ASSIGN_OR_RETURN(ast->body, subparse({}));
    if (cur().type != TokenType::kEof) return fail(cur(), "unexpected " + describe(cur()));
    return std::shared_ptr<const TemplateAst>(std::move(ast));
  }

 private:
  // --- token stream ---
  const Token& cur() const { return toks_[pos_]; }
  const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  const Token& advance() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  static bool is_name(const Token& t, std::string_view v) { return t.type == TokenType::kName && t.text == v; }
  static bool is_op(const Token& t, std::string_view v) { return t.type == TokenType::kOperator && t.text == v; }
  bool skip_name(std::string_view v) {
    if (!is_name(cur(), v)) return false;
    advance();
    return true;
  }
  bool skip_op(std::string_view v) {
    if (!is_op(cur(), v)) return false;
    advance();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kData: return "'template data / text'";
      case TokenType::kVariableBegin: return "'begin of print statement'";
      case TokenType::kVariableEnd: return "'end of print statement'";
      case TokenType::kBlockBegin: return "'begin of statement block'";
      case TokenType::kBlockEnd: return "'end of statement block'";
      case TokenType::kName: return "'" + t.text + "'";
      case TokenType::kString: return "'string'";
      case TokenType::kInteger: return "'integer'";
      case TokenType::kFloat: return "'float'";
      case TokenType::kOperator: return "'" + t.text + "'";
      case TokenType::kEof: return "'end of template'";
    }
    return "'token'";
  }

  Status fail(const Token& t, const std::string& what) const {
    return invalid_argument("{}:{}:{}: {}", origin_, t.line, t.col, what);
  }
  Status unsupported(const Token& t, const std::string& what) const {
    return unimplemented("{}:{}:{}: {} is not supported by tuneloop's chat-template renderer", origin_, t.line, t.col, what);
  }

  Status expect(TokenType type, std::string_view op_or_name, const char* description) {
    const Token& t = cur();
    bool ok = t.type == type;
    if (ok && !op_or_name.empty()) ok = t.text == op_or_name;
    if (ok) {
      advance();
      return Status::ok();
    }
    if (t.type == TokenType::kEof) return fail(t, fmt::format("unexpected end of template, expected '{}'.", description));
    return fail(t, fmt::format("expected token '{}', got {}", description, describe(t)));
  }
  Status expect_op(std::string_view op) { return expect(TokenType::kOperator, op, std::string(op).c_str()); }
  Result<std::string> expect_any_name() {
    if (cur().type != TokenType::kName) {
      TL_TRY(expect(TokenType::kName, "", "name"));
    }
    return advance().text;
  }

  // Guards recursion so hostile input (10k open brackets) fails cleanly.
  struct DepthGuard {
    int& depth;
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
  };
  Status check_depth() const {
    if (depth_ > kMaxParseDepth) return fail(cur(), fmt::format("template nests deeper than {} levels", kMaxParseDepth));
    return Status::ok();
  }

  // --- statements ---
  Result<Body> subparse(const std::vector<std::string>& end_tokens) {
    DepthGuard guard(depth_);
    TL_TRY(check_depth());
    if (!end_tokens.empty()) end_stack_.push_back(end_tokens);
    Body body;
    while (cur().type != TokenType::kEof) {
      const Token& t = cur();
      if (t.type == TokenType::kData) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::kText, t.line);
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == TokenType::kVariableBegin) {
        const int line = t.line;
        advance();
        auto s = std::make_unique<Stmt>(Stmt::Kind::kPrint, line);
        TL_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true, {}, false));
        TL_TRY(expect(TokenType::kVariableEnd, "", "end of print statement"));
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        advance();
        if (!end_tokens.empty() && cur().type == TokenType::kName) {
          bool is_end = false;
          for (const auto& e : end_tokens) is_end = is_end || cur().text == e;
          if (is_end) {
            end_stack_.pop_back();
            return body;
          }
        }
        TL_ASSIGN_OR_RETURN(StmtPtr s, parse_statement());
        if (s) body.push_back(std::move(s));
        TL_TRY(expect(TokenType::kBlockEnd, "", "end of statement block"));
      } else {
        return fail(t, "unexpected " + describe(t));
      }
    }
    if (!end_tokens.empty()) end_stack_.pop_back();
    return body;
  }

  // jinja2's _fail_ut_eof message: unknown tag or early end, naming the expected end tags.
  Status fail_unknown(const Token& t, const std::string* name) {
    std::string msg = name ? fmt::format("Encountered unknown tag '{}'.", *name) : "Unexpected end of template.";
    if (!end_stack_.empty()) {
      std::set<std::string> expected;
      for (const auto& v : end_stack_) expected.insert(v.begin(), v.end());
      std::string looking;
      for (const auto& e : end_stack_.back()) looking += (looking.empty() ? "'" : " or '") + e + "'";
      if (name && expected.count(*name)) {
        msg += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for " + looking + ".";
      } else {
        msg += " Jinja was looking for the following tags: " + looking + ".";
      }
    }
    if (!tag_stack_.empty()) msg += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
    return fail(t, msg);
  }

  // Body of a block statement: optional ":", "%}", statements up to one of `end_tokens`.
  Result<Body> parse_statements(const std::vector<std::string>& end_tokens, bool drop_needle) {
    skip_op(":");
    TL_TRY(expect(TokenType::kBlockEnd, "", "end of statement block"));
    TL_ASSIGN_OR_RETURN(Body body, subparse(end_tokens));
    if (cur().type == TokenType::kEof) {
      end_stack_.push_back(end_tokens);  // jinja2's fail_eof names the tags it was looking for
      return fail_unknown(cur(), nullptr);
    }
    if (drop_needle) advance();
    return body;
  }

  Result<StmtPtr> parse_statement() {
    const Token& t = cur();
    if (t.type != TokenType::kName) return fail(t, "tag name expected");
    const std::string name = t.text;
    static const std::set<std::string> kUnsupported = {"block", "extends", "include", "import", "from", "call", "autoescape"};
    if (kUnsupported.count(name)) return unsupported(t, "'{% " + name + " %}'");
    static const std::set<std::string> kKnown = {"for", "if", "set", "macro", "filter", "with", "print", "break", "continue", "generation"};
    if (!kKnown.count(name)) return fail_unknown(t, &name);
    tag_stack_.push_back(name);
    auto result = parse_known_statement(name);
    tag_stack_.pop_back();
    return result;
  }

  Result<StmtPtr> parse_known_statement(const std::string& name) {
    const Token start = advance();
    const int line = start.line;
    if (name == "if") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kIf, line);
      while (true) {
        TL_ASSIGN_OR_RETURN(ExprPtr test, parse_tuple(false, false, {}, false));
        TL_ASSIGN_OR_RETURN(Body body, parse_statements({"elif", "else", "endif"}, false));
        s->tests.push_back(std::move(test));
        s->bodies.push_back(std::move(body));
        const std::string which = advance().text;
        if (which == "elif") continue;
        if (which == "else") {
          TL_ASSIGN_OR_RETURN(s->else_body, parse_statements({"endif"}, true));
        }
        break;
      }
      return StmtPtr(std::move(s));
    }
    if (name == "for") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kFor, line);
      TL_TRY(parse_targets(*s, {"in"}));
      TL_TRY(expect(TokenType::kName, "in", "in"));
      TL_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, false, {"recursive"}, false));
      if (skip_name("if")) {
        TL_ASSIGN_OR_RETURN(s->filter, parse_expression(true));
      }
      if (is_name(cur(), "recursive")) return unsupported(cur(), "a recursive for loop");
      TL_ASSIGN_OR_RETURN(s->body, parse_statements({"endfor", "else"}, false));
      if (advance().text == "else") {
        TL_ASSIGN_OR_RETURN(s->else_body, parse_statements({"endfor"}, true));
      }
      return StmtPtr(std::move(s));
    }
    if (name == "set") {
      if (cur().type == TokenType::kName && is_op(look(), ".")) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::kSetAttr, line);
        s->targets.push_back(advance().text);
        advance();  // "."
        TL_ASSIGN_OR_RETURN(s->attr, expect_any_name());
        if (!skip_op("=")) return unsupported(cur(), "a block set of a namespace attribute");
        TL_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true, {}, false));
        return StmtPtr(std::move(s));
      }
      auto s = std::make_unique<Stmt>(Stmt::Kind::kSet, line);
      TL_TRY(parse_targets(*s, {}));
      if (skip_op("=")) {
        TL_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, true, {}, false));
        return StmtPtr(std::move(s));
      }
      s->kind = Stmt::Kind::kSetBlock;
      if (s->targets.size() != 1 || s->unpack) return fail(start, "can't assign to 'tuple'");
      if (is_op(cur(), "|")) {
        TL_ASSIGN_OR_RETURN(s->filter, parse_filter(nullptr, false));
      }
      TL_ASSIGN_OR_RETURN(s->body, parse_statements({"endset"}, true));
      return StmtPtr(std::move(s));
    }
    if (name == "macro") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kMacro, line);
      TL_ASSIGN_OR_RETURN(s->attr, expect_any_name());
      TL_TRY(expect_op("("));
      while (!is_op(cur(), ")")) {
        if (!s->targets.empty()) TL_TRY(expect_op(","));
        TL_ASSIGN_OR_RETURN(std::string param, expect_any_name());
        s->targets.push_back(param);
        if (skip_op("=")) {
          TL_ASSIGN_OR_RETURN(ExprPtr def, parse_expression(true));
          s->tests.push_back(std::move(def));
        } else if (!s->tests.empty()) {
          return fail(cur(), "non-default argument follows default argument");
        }
      }
      TL_TRY(expect_op(")"));
      TL_ASSIGN_OR_RETURN(s->body, parse_statements({"endmacro"}, true));
      return StmtPtr(std::move(s));
    }
    if (name == "filter") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kFilterBlock, line);
      TL_ASSIGN_OR_RETURN(s->expr, parse_filter(nullptr, true));
      TL_ASSIGN_OR_RETURN(s->body, parse_statements({"endfilter"}, true));
      return StmtPtr(std::move(s));
    }
    if (name == "with") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kWith, line);
      while (cur().type != TokenType::kBlockEnd) {
        if (!s->targets.empty()) TL_TRY(expect_op(","));
        TL_ASSIGN_OR_RETURN(std::string target, expect_any_name());
        s->targets.push_back(target);
        TL_TRY(expect_op("="));
        TL_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        s->tests.push_back(std::move(value));
      }
      TL_ASSIGN_OR_RETURN(s->body, parse_statements({"endwith"}, true));
      return StmtPtr(std::move(s));
    }
    if (name == "print") {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kPrint, line);
      std::vector<ExprPtr> items;
      while (cur().type != TokenType::kBlockEnd) {
        if (!items.empty()) TL_TRY(expect_op(","));
        TL_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
        items.push_back(std::move(e));
      }
      // Each expression prints in turn; model as a concatenation of their str().
      auto concat = std::make_unique<Expr>(Expr::Kind::kConcat, line);
      concat->children = std::move(items);
      s->expr = std::move(concat);
      return StmtPtr(std::move(s));
    }
    if (name == "break" || name == "continue") {
      bool in_loop = false;
      for (const auto& tag : tag_stack_) in_loop = in_loop || tag == "for";
      // jinja2's loopcontrols only checks nesting inside a for at compile time, outside macros.
      if (!in_loop) return fail(start, fmt::format("'{}' outside of a loop", name));
      return std::make_unique<Stmt>(name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, line);
    }
    // generation (transformers' AssistantTracker extension)
    auto s = std::make_unique<Stmt>(Stmt::Kind::kGeneration, line);
    TL_ASSIGN_OR_RETURN(s->body, parse_statements({"endgeneration"}, true));
    return StmtPtr(std::move(s));
  }

  // Assignment target of for/set: a name, or names separated by commas (optionally in parentheses).
  Status parse_targets(Stmt& s, const std::vector<std::string>& extra_end) {
    const bool paren = skip_op("(");
    while (true) {
      if (cur().type != TokenType::kName) {
        if (cur().type == TokenType::kString || cur().type == TokenType::kInteger || cur().type == TokenType::kFloat) {
          return fail(cur(), "can't assign to 'const'");
        }
        TL_TRY(expect(TokenType::kName, "", "name"));
      }
      s.targets.push_back(advance().text);
      if (!is_op(cur(), ",")) break;
      advance();
      s.unpack = true;
      bool end = is_op(cur(), ")") || cur().type == TokenType::kBlockEnd || is_op(cur(), "=");
      for (const auto& e : extra_end) end = end || is_name(cur(), e);
      if (end) break;
    }
    if (paren) {
      s.unpack = true;
      TL_TRY(expect_op(")"));
    }
    return Status::ok();
  }

  // --- expressions ---
  Result<ExprPtr> parse_expression(bool with_condexpr) {
    DepthGuard guard(depth_);
    TL_TRY(check_depth());
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  Result<ExprPtr> parse_condexpr() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr expr1, parse_or());
    while (skip_name("if")) {
      TL_ASSIGN_OR_RETURN(ExprPtr expr2, parse_or());
      ExprPtr expr3;
      if (skip_name("else")) {
        DepthGuard guard(depth_);
        TL_TRY(check_depth());
        TL_ASSIGN_OR_RETURN(expr3, parse_condexpr());
      }
      auto node = std::make_unique<Expr>(Expr::Kind::kCondExpr, line);
      node->children.push_back(std::move(expr2));
      node->children.push_back(std::move(expr1));
      node->children.push_back(std::move(expr3));
      expr1 = std::move(node);
    }
    return expr1;
  }

  static ExprPtr binary(Expr::Kind kind, int line, ExprPtr a, ExprPtr b, std::string op = {}) {
    auto node = std::make_unique<Expr>(kind, line);
    node->children.push_back(std::move(a));
    node->children.push_back(std::move(b));
    node->name = std::move(op);
    return node;
  }

  Result<ExprPtr> parse_or() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (skip_name("or")) {
      TL_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      left = binary(Expr::Kind::kOr, line, std::move(left), std::move(right));
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (skip_name("and")) {
      TL_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      left = binary(Expr::Kind::kAnd, line, std::move(left), std::move(right));
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (is_name(cur(), "not")) {
      const int line = advance().line;
      DepthGuard guard(depth_);
      TL_TRY(check_depth());
      TL_ASSIGN_OR_RETURN(ExprPtr inner, parse_not());
      auto node = std::make_unique<Expr>(Expr::Kind::kNot, line);
      node->children.push_back(std::move(inner));
      return ExprPtr(std::move(node));
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr expr, parse_math1());
    std::unique_ptr<Expr> node;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOperator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" || cur().text == ">" ||
           cur().text == ">=")) {
        op = advance().text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name(cur(), "not") && is_name(look(), "in")) {
        advance();
        advance();
        op = "notin";
      } else {
        break;
      }
      TL_ASSIGN_OR_RETURN(ExprPtr rhs, parse_math1());
      if (!node) {
        node = std::make_unique<Expr>(Expr::Kind::kCompare, line);
        node->children.push_back(std::move(expr));
      }
      node->ops.push_back(op);
      node->children.push_back(std::move(rhs));
    }
    if (node) return ExprPtr(std::move(node));
    return expr;
  }

  Result<ExprPtr> parse_math1() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr left, parse_concat());
    while (is_op(cur(), "+") || is_op(cur(), "-")) {
      std::string op = advance().text;
      TL_ASSIGN_OR_RETURN(ExprPtr right, parse_concat());
      left = binary(Expr::Kind::kBinary, line, std::move(left), std::move(right), op);
    }
    return left;
  }

  Result<ExprPtr> parse_concat() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr first, parse_math2());
    if (!is_op(cur(), "~")) return first;
    auto node = std::make_unique<Expr>(Expr::Kind::kConcat, line);
    node->children.push_back(std::move(first));
    while (skip_op("~")) {
      TL_ASSIGN_OR_RETURN(ExprPtr next, parse_math2());
      node->children.push_back(std::move(next));
    }
    return ExprPtr(std::move(node));
  }

  Result<ExprPtr> parse_math2() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr left, parse_pow());
    while (is_op(cur(), "*") || is_op(cur(), "/") || is_op(cur(), "//") || is_op(cur(), "%")) {
      std::string op = advance().text;
      TL_ASSIGN_OR_RETURN(ExprPtr right, parse_pow());
      left = binary(Expr::Kind::kBinary, line, std::move(left), std::move(right), op);
    }
    return left;
  }

  Result<ExprPtr> parse_pow() {
    const int line = cur().line;
    TL_ASSIGN_OR_RETURN(ExprPtr left, parse_unary(true));
    while (skip_op("**")) {
      TL_ASSIGN_OR_RETURN(ExprPtr right, parse_unary(true));
      left = binary(Expr::Kind::kBinary, line, std::move(left), std::move(right), "**");
    }
    return left;
  }

  Result<ExprPtr> parse_unary(bool with_filter) {
    DepthGuard guard(depth_);
    TL_TRY(check_depth());
    const int line = cur().line;
    ExprPtr node;
    if (is_op(cur(), "-") || is_op(cur(), "+")) {
      const bool neg = advance().text == "-";
      TL_ASSIGN_OR_RETURN(ExprPtr inner, parse_unary(false));
      node = std::make_unique<Expr>(neg ? Expr::Kind::kNeg : Expr::Kind::kPos, line);
      node->children.push_back(std::move(inner));
    } else {
      TL_ASSIGN_OR_RETURN(node, parse_primary());
    }
    TL_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) {
      TL_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node)));
    }
    return node;
  }

  Result<ExprPtr> parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    if (t.type == TokenType::kName) {
      ExprPtr node;
      if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
        node = std::make_unique<Expr>(Expr::Kind::kConst, line);
        node->value = Value(t.text == "true" || t.text == "True");
      } else if (t.text == "none" || t.text == "None") {
        node = std::make_unique<Expr>(Expr::Kind::kConst, line);
        node->value = Value(None{});
      } else {
        node = std::make_unique<Expr>(Expr::Kind::kName, line);
        node->name = t.text;
      }
      advance();
      return node;
    }
    if (t.type == TokenType::kString) {
      std::string s;
      while (cur().type == TokenType::kString) s += advance().text;  // adjacent literals join
      auto node = std::make_unique<Expr>(Expr::Kind::kConst, line);
      node->value = Value(std::move(s));
      return ExprPtr(std::move(node));
    }
    if (t.type == TokenType::kInteger || t.type == TokenType::kFloat) {
      auto node = std::make_unique<Expr>(Expr::Kind::kConst, line);
      node->value = t.type == TokenType::kInteger ? Value(t.int_value) : Value(t.float_value);
      advance();
      return ExprPtr(std::move(node));
    }
    if (is_op(t, "(")) {
      advance();
      TL_ASSIGN_OR_RETURN(ExprPtr node, parse_tuple(false, true, {}, true));
      TL_TRY(expect_op(")"));
      return node;
    }
    if (is_op(t, "[")) {
      advance();
      auto node = std::make_unique<Expr>(Expr::Kind::kList, line);
      while (!is_op(cur(), "]")) {
        if (!node->children.empty()) TL_TRY(expect_op(","));
        if (is_op(cur(), "]")) break;
        TL_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
        node->children.push_back(std::move(item));
      }
      TL_TRY(expect_op("]"));
      return ExprPtr(std::move(node));
    }
    if (is_op(t, "{")) {
      advance();
      auto node = std::make_unique<Expr>(Expr::Kind::kDict, line);
      while (!is_op(cur(), "}")) {
        if (!node->children.empty()) TL_TRY(expect_op(","));
        if (is_op(cur(), "}")) break;
        TL_ASSIGN_OR_RETURN(ExprPtr key, parse_expression(true));
        TL_TRY(expect_op(":"));
        TL_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        node->children.push_back(std::move(key));
        node->children.push_back(std::move(value));
      }
      TL_TRY(expect_op("}"));
      return ExprPtr(std::move(node));
    }
    return fail(t, "unexpected " + describe(t));
  }

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    const Token& t = cur();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || t.type == TokenType::kEof || is_op(t, ")")) return true;
    for (const auto& e : extra_end) {
      if (is_name(t, e)) return true;
    }
    return false;
  }

  Result<ExprPtr> parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                              bool explicit_parentheses) {
    const int line = cur().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) TL_TRY(expect_op(","));
      if (is_tuple_end(extra_end)) break;
      ExprPtr item;
      if (simplified) {
        TL_ASSIGN_OR_RETURN(item, parse_primary());
      } else {
        TL_ASSIGN_OR_RETURN(item, parse_expression(with_condexpr));
      }
      args.push_back(std::move(item));
      if (is_op(cur(), ",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) return fail(cur(), "Expected an expression, got " + describe(cur()));
    }
    auto node = std::make_unique<Expr>(Expr::Kind::kTuple, line);
    node->children = std::move(args);
    return ExprPtr(std::move(node));
  }

  Result<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(cur(), ".") || is_op(cur(), "[")) {
        TL_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
      } else if (is_op(cur(), "(")) {
        TL_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        break;
      }
    }
    return node;
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op(cur(), "|")) {
        TL_ASSIGN_OR_RETURN(node, parse_filter(std::move(node), false));
      } else if (is_name(cur(), "is")) {
        TL_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
      } else if (is_op(cur(), "(")) {
        TL_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        break;
      }
    }
    return node;
  }

  Result<ExprPtr> parse_subscript(ExprPtr node) {
    DepthGuard guard(depth_);
    TL_TRY(check_depth());
    const Token tok = advance();
    if (tok.text == ".") {
      const Token attr = advance();
      if (attr.type == TokenType::kName) {
        auto n = std::make_unique<Expr>(Expr::Kind::kGetattr, tok.line);
        n->children.push_back(std::move(node));
        n->name = attr.text;
        return ExprPtr(std::move(n));
      }
      if (attr.type != TokenType::kInteger) return fail(attr, "expected name or number");
      auto n = std::make_unique<Expr>(Expr::Kind::kGetitem, tok.line);
      n->children.push_back(std::move(node));
      auto idx = std::make_unique<Expr>(Expr::Kind::kConst, attr.line);
      idx->value = Value(attr.int_value);
      n->children.push_back(std::move(idx));
      return ExprPtr(std::move(n));
    }
    std::vector<ExprPtr> args;
    while (!is_op(cur(), "]")) {
      if (!args.empty()) TL_TRY(expect_op(","));
      TL_ASSIGN_OR_RETURN(ExprPtr a, parse_subscribed());
      args.push_back(std::move(a));
    }
    TL_TRY(expect_op("]"));
    auto n = std::make_unique<Expr>(Expr::Kind::kGetitem, tok.line);
    n->children.push_back(std::move(node));
    if (args.size() == 1) {
      n->children.push_back(std::move(args[0]));
    } else {
      auto tuple = std::make_unique<Expr>(Expr::Kind::kTuple, tok.line);
      tuple->children = std::move(args);
      n->children.push_back(std::move(tuple));
    }
    return ExprPtr(std::move(n));
  }

  Result<ExprPtr> parse_subscribed() {
    const int line = cur().line;
    std::vector<ExprPtr> parts;
    if (skip_op(":")) {
      parts.push_back(nullptr);
    } else {
      TL_ASSIGN_OR_RETURN(ExprPtr node, parse_expression(true));
      if (!skip_op(":")) return node;
      parts.push_back(std::move(node));
    }
    if (is_op(cur(), ":") || is_op(cur(), "]") || is_op(cur(), ",")) {
      parts.push_back(nullptr);
    } else {
      TL_ASSIGN_OR_RETURN(ExprPtr stop, parse_expression(true));
      parts.push_back(std::move(stop));
    }
    if (skip_op(":")) {
      if (is_op(cur(), "]") || is_op(cur(), ",")) {
        parts.push_back(nullptr);
      } else {
        TL_ASSIGN_OR_RETURN(ExprPtr step, parse_expression(true));
        parts.push_back(std::move(step));
      }
    } else {
      parts.push_back(nullptr);
    }
    auto n = std::make_unique<Expr>(Expr::Kind::kSlice, line);
    n->children = std::move(parts);
    return ExprPtr(std::move(n));
  }

  Status parse_call_args(Expr& node) {
    const Token open = cur();
    TL_TRY(expect_op("("));
    bool require_comma = false;
    while (!is_op(cur(), ")")) {
      if (require_comma) {
        TL_TRY(expect_op(","));
        if (is_op(cur(), ")")) break;
      }
      if (is_op(cur(), "*") || is_op(cur(), "**")) return unsupported(cur(), "'*args' / '**kwargs' in a call");
      if (cur().type == TokenType::kName && is_op(look(), "=")) {
        std::string key = advance().text;
        advance();
        TL_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        node.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!node.kwargs.empty()) return fail(open, "invalid syntax for function call expression");
        TL_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        node.children.push_back(std::move(value));
      }
      require_comma = true;
    }
    return expect_op(")");
  }

  Result<ExprPtr> parse_call(ExprPtr callee) {
    DepthGuard guard(depth_);
    TL_TRY(check_depth());
    auto n = std::make_unique<Expr>(Expr::Kind::kCall, cur().line);
    n->children.push_back(std::move(callee));
    TL_TRY(parse_call_args(*n));
    return ExprPtr(std::move(n));
  }

  // jinja2 rejects unknown filters and tests when compiling, so do we (at parse time).
  Status check_known(const Token& t, const std::string& name, bool filter) const {
    static const std::set<std::string> kJinjaFilters = {
        "filesizeformat", "forceescape", "format", "groupby", "pprint", "random", "slice", "striptags",
        "truncate", "urlencode", "urlize", "wordwrap", "xmlattr"};
    if (filter ? has_filter(name) : has_test(name)) return Status::ok();
    if (filter && kJinjaFilters.count(name)) return unsupported(t, "the '" + name + "' filter");
    return fail(t, fmt::format("No {} named {}.", filter ? "filter" : "test", py_str_repr(name)));
  }

  // `| name(args)` repeated; with start_inline the first filter has no leading "|" (filter blocks).
  Result<ExprPtr> parse_filter(ExprPtr node, bool start_inline) {
    while (is_op(cur(), "|") || start_inline) {
      DepthGuard guard(depth_);
      TL_TRY(check_depth());
      if (!start_inline) advance();
      const Token tok = cur();
      TL_ASSIGN_OR_RETURN(std::string name, expect_any_name());
      while (skip_op(".")) {
        TL_ASSIGN_OR_RETURN(std::string part, expect_any_name());
        name += "." + part;
      }
      TL_TRY(check_known(tok, name, true));
      auto n = std::make_unique<Expr>(Expr::Kind::kFilter, tok.line);
      n->name = name;
      n->children.push_back(std::move(node));
      if (is_op(cur(), "(")) TL_TRY(parse_call_args(*n));
      node = std::move(n);
      start_inline = false;
    }
    return node;
  }

  Result<ExprPtr> parse_test(ExprPtr node) {
    const Token tok = advance();  // "is"
    const bool negated = skip_name("not");
    TL_ASSIGN_OR_RETURN(std::string name, expect_any_name());
    while (skip_op(".")) {
      TL_ASSIGN_OR_RETURN(std::string part, expect_any_name());
      name += "." + part;
    }
    TL_TRY(check_known(tok, name, false));
    auto n = std::make_unique<Expr>(Expr::Kind::kTest, tok.line);
    n->name = name;
    n->children.push_back(std::move(node));
    const Token& t = cur();
    if (is_op(t, "(")) {
      TL_TRY(parse_call_args(*n));
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
                t.type == TokenType::kFloat || is_op(t, "(") || is_op(t, "[") || is_op(t, "{")) &&
               !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and")) {
      if (is_name(t, "is")) return fail(t, "You cannot chain multiple tests with is");
      TL_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
      TL_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
      n->children.push_back(std::move(arg));
    }
    if (!negated) return ExprPtr(std::move(n));
    auto neg = std::make_unique<Expr>(Expr::Kind::kNot, tok.line);
    neg->children.push_back(std::move(n));
    return ExprPtr(std::move(neg));
  }

  std::vector<Token> toks_;
  const std::string& origin_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<std::vector<std::string>> end_stack_;
  std::vector<std::string> tag_stack_;
};

}  // namespace

Result<std::shared_ptr<const TemplateAst>> parse_template(std::string_view source, const std::string& origin) {
  TL_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(source, origin));
  Parser parser(std::move(tokens), origin);
  return parser.run();
}

}  // namespace tl::jinja
