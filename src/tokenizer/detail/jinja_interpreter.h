// Evaluator of the Jinja-subset renderer: walks a TemplateAst over a context and writes the output.
//
// Scoping follows jinja2 3.1 as compiled code behaves: the template has one top-level scope; every
// for-loop iteration gets a fresh child scope (a {% set %} inside a loop is gone at the next
// iteration and outside the loop, hence namespace()); {% if %} opens no scope; a macro body runs in
// a child of the scope it was defined in, seen at call time. Hostile templates are bounded: output
// size, evaluation steps (so nested loops over range() cannot hang) and call depth all have limits
// that fail with a clear error instead of crashing or spinning.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/detail/jinja_ast.h"
#include "tokenizer/detail/jinja_value.h"

namespace tl::jinja {

struct InterpreterLimits {
  size_t max_output_bytes = 64u << 20;  // also bounds any single string or list built while rendering
  uint64_t max_steps = 50'000'000;      // statements + loop iterations + calls
  int max_call_depth = 64;              // macro recursion
};

// A scope: variables plus the enclosing scope (shared: macros keep their defining scope alive).
struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
  const Value* find(const std::string& name) const;
};
using FramePtr = std::shared_ptr<Frame>;

class Interpreter {
 public:
  // `now_utc`: seconds since the epoch that strftime_now() formats (as UTC); nullopt = the local clock.
  Interpreter(const TemplateAst& ast, std::string origin, InterpreterLimits limits, std::optional<int64_t> now_utc);
  // Breaks the reference cycles a template can build (a namespace holding itself), see track().
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Renders with `globals` as the outermost scope (context variables and builtins).
  Result<std::string> render(FramePtr globals);

  // Calls a callable value (macro, builtin, bound method).
  Result<Value> call(const Value& callee, CallArgs& args);
  // Counts one unit of work; fails once the step budget is spent.
  Status step();
  // Fails when a string/list being built would exceed the output limit.
  Status check_size(size_t bytes) const;
  // Marks `s` as the final error text (raise_exception): no location prefix is added to it.
  Status raise(Status s);

  // Namespaces are the only mutable values, so the only way to build a shared_ptr cycle
  // ({% set ns.self = ns %}); the interpreter empties every tracked one when it is destroyed.
  void track(std::shared_ptr<NamespaceData> ns) { namespaces_.push_back(std::move(ns)); }

  std::optional<int64_t> now_utc() const { return now_utc_; }
  const InterpreterLimits& limits() const { return limits_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Result<Flow> exec_body(const Body& body, const FramePtr& frame);
  Result<Flow> exec(const Stmt& s, const FramePtr& frame);
  Result<Flow> exec_for(const Stmt& s, const FramePtr& frame);
  Status exec_set(const Stmt& s, const FramePtr& frame);
  Result<std::string> capture(const Body& body, const FramePtr& frame);
  Status assign(const Stmt& s, const FramePtr& frame, const Value& v);
  Value make_macro(const Stmt& s, const FramePtr& frame);

  Result<Value> eval(const Expr& e, const FramePtr& frame);
  Result<Value> eval_inner(const Expr& e, const FramePtr& frame);
  Result<Value> eval_filter(const Expr& e, const FramePtr& frame, const Value* injected);
  Result<CallArgs> eval_args(const Expr& e, size_t first, const FramePtr& frame);
  Result<Value> eval_compare(const Expr& e, const FramePtr& frame);
  Result<Value> eval_getitem(const Expr& e, const FramePtr& frame);

  Status append(const std::string& text);
  Status locate(Status s, int line);

  const TemplateAst& ast_;
  std::string origin_;
  InterpreterLimits limits_;
  std::optional<int64_t> now_utc_;
  std::string* out_ = nullptr;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  bool located_ = false;  // the pending error already carries its final text
  // Scopes that define macros, owned here: a macro refers to its scope weakly, since the scope
  // holds the macro (a strong reference both ways would leak).
  std::vector<FramePtr> macro_scopes_;
  std::vector<std::shared_ptr<NamespaceData>> namespaces_;
};

}  // namespace tl::jinja
