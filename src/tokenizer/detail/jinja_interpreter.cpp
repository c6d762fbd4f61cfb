// Tree-walking evaluator for the Jinja-subset renderer (scoping and limits: see jinja_interpreter.h).
#include "tokenizer/detail/jinja_interpreter.h"

#include "tokenizer/detail/jinja_builtins.h"
#include "tokenizer/detail/jinja_text.h"

namespace tl::jinja {

const Value* Frame::find(const std::string& name) const {
  for (const Frame* f = this; f; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return &it->second;
  }
  return nullptr;
}

Interpreter::Interpreter(const TemplateAst& ast, std::string origin, InterpreterLimits limits,
                         std::optional<int64_t> now_utc)
    : ast_(ast), origin_(std::move(origin)), limits_(limits), now_utc_(now_utc) {}

Interpreter::~Interpreter() {
  for (auto& ns : namespaces_) ns->attrs.entries.clear();
}

Result<std::string> Interpreter::render(FramePtr globals) {
  auto top = std::make_shared<Frame>();
  top->parent = std::move(globals);
  std::string out;
  out_ = &out;
  located_ = false;
  TL_ASSIGN_OR_RETURN(Flow flow, exec_body(ast_.body, top));
  (void)flow;  // break/continue only parse inside loops
  out_ = nullptr;
  return out;
}

Status Interpreter::step() {
  if (++steps_ > limits_.max_steps) {
    return resource_exhausted("template exceeded the evaluation step limit ({} steps)", limits_.max_steps);
  }
  return Status::ok();
}

Status Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    return resource_exhausted("template output exceeds the limit of {} bytes", limits_.max_output_bytes);
  }
  return Status::ok();
}

Status Interpreter::raise(Status s) {
  located_ = true;
  return s;
}

Status Interpreter::locate(Status s, int line) {
  if (located_) return s;
  located_ = true;
  return Status(s.code(), fmt::format("{}:{}: {}", origin_, line, s.message()));
}

Status Interpreter::append(const std::string& text) {
  TL_TRY(check_size(out_->size() + text.size()));
  out_->append(text);
  return Status::ok();
}

Result<Interpreter::Flow> Interpreter::exec_body(const Body& body, const FramePtr& frame) {
  for (const auto& s : body) {
    TL_ASSIGN_OR_RETURN(Flow flow, exec(*s, frame));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Result<std::string> Interpreter::capture(const Body& body, const FramePtr& frame) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  auto flow = exec_body(body, frame);
  out_ = saved;
  if (!flow.is_ok()) return flow.status();
  return buffer;
}

Result<Interpreter::Flow> Interpreter::exec(const Stmt& s, const FramePtr& frame) {
  {
    Status st = step();
    if (!st.is_ok()) return locate(st, s.line);
  }
  switch (s.kind) {
    case Stmt::Kind::kText: {
      Status st = append(s.text);
      if (!st.is_ok()) return locate(st, s.line);
      return Flow::kNormal;
    }
    case Stmt::Kind::kPrint: {
      TL_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
      Status st = append(to_str(v));
      if (!st.is_ok()) return locate(st, s.line);
      return Flow::kNormal;
    }
    case Stmt::Kind::kIf: {
      for (size_t i = 0; i < s.tests.size(); ++i) {
        TL_ASSIGN_OR_RETURN(Value test, eval(*s.tests[i], frame));
        if (truthy(test)) return exec_body(s.bodies[i], frame);
      }
      return exec_body(s.else_body, frame);
    }
    case Stmt::Kind::kFor: return exec_for(s, frame);
    case Stmt::Kind::kSet:
    case Stmt::Kind::kSetAttr:
    case Stmt::Kind::kSetBlock: {
      TL_TRY(exec_set(s, frame));
      return Flow::kNormal;
    }
    case Stmt::Kind::kMacro:
      frame->vars[s.attr] = make_macro(s, frame);
      return Flow::kNormal;
    case Stmt::Kind::kFilterBlock: {
      TL_ASSIGN_OR_RETURN(std::string text, capture(s.body, frame));
      const Value input(std::move(text));
      TL_ASSIGN_OR_RETURN(Value v, eval_filter(*s.expr, frame, &input));
      Status st = append(to_str(v));
      if (!st.is_ok()) return locate(st, s.line);
      return Flow::kNormal;
    }
    case Stmt::Kind::kWith: {
      auto inner = std::make_shared<Frame>();
      inner->parent = frame;
      for (size_t i = 0; i < s.targets.size(); ++i) {
        TL_ASSIGN_OR_RETURN(Value v, eval(*s.tests[i], frame));
        inner->vars[s.targets[i]] = std::move(v);
      }
      return exec_body(s.body, inner);
    }
    case Stmt::Kind::kBreak: return Flow::kBreak;
    case Stmt::Kind::kContinue: return Flow::kContinue;
    case Stmt::Kind::kGeneration: return exec_body(s.body, frame);
  }
  return Flow::kNormal;
}

Status Interpreter::assign(const Stmt& s, const FramePtr& frame, const Value& v) {
  if (!s.unpack && s.targets.size() == 1) {
    frame->vars[s.targets[0]] = v;
    return Status::ok();
  }
  if (v.is_undefined()) return locate(undefined_error(v), s.line);
  auto items = iterate(v);
  if (!items.is_ok()) {
    return locate(invalid_argument("cannot unpack non-iterable {} object", type_name(v)), s.line);
  }
  if (items->size() != s.targets.size()) {
    if (items->size() > s.targets.size()) {
      return locate(invalid_argument("too many values to unpack (expected {})", s.targets.size()), s.line);
    }
    return locate(invalid_argument("not enough values to unpack (expected {}, got {})", s.targets.size(), items->size()),
                  s.line);
  }
  for (size_t i = 0; i < s.targets.size(); ++i) frame->vars[s.targets[i]] = (*items)[i];
  return Status::ok();
}

Status Interpreter::exec_set(const Stmt& s, const FramePtr& frame) {
  if (s.kind == Stmt::Kind::kSetAttr) {
    TL_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
    const Value* target = frame->find(s.targets[0]);
    if (!target || !target->is_namespace()) {
      return locate(invalid_argument("cannot assign attribute on non-namespace object"), s.line);
    }
    target->as_namespace().attrs.set(Value(s.attr), std::move(v));
    return Status::ok();
  }
  if (s.kind == Stmt::Kind::kSetBlock) {
    TL_ASSIGN_OR_RETURN(std::string text, capture(s.body, frame));
    Value v(std::move(text));
    if (s.filter) {
      TL_ASSIGN_OR_RETURN(v, eval_filter(*s.filter, frame, &v));
    }
    frame->vars[s.targets[0]] = std::move(v);
    return Status::ok();
  }
  TL_ASSIGN_OR_RETURN(Value v, eval(*s.expr, frame));
  return assign(s, frame, v);
}

Result<Interpreter::Flow> Interpreter::exec_for(const Stmt& s, const FramePtr& frame) {
  TL_ASSIGN_OR_RETURN(Value iterable, eval(*s.expr, frame));
  auto items_or = iterate(iterable);
  if (!items_or.is_ok()) return locate(items_or.status(), s.line);
  std::vector<Value> items = std::move(items_or).value();
  if (s.filter) {
    // jinja2 filters before building the loop object: loop.length/last count kept items only.
    std::vector<Value> kept;
    for (auto& item : items) {
      Status st = step();
      if (!st.is_ok()) return locate(st, s.line);
      auto scope = std::make_shared<Frame>();
      scope->parent = frame;
      TL_TRY(assign(s, scope, item));
      TL_ASSIGN_OR_RETURN(Value keep, eval(*s.filter, scope));
      if (truthy(keep)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec_body(s.else_body, frame);
  auto list = std::make_shared<ListData>();
  list->items = std::move(items);
  for (size_t i = 0; i < list->items.size(); ++i) {
    Status st = step();
    if (!st.is_ok()) return locate(st, s.line);
    auto scope = std::make_shared<Frame>();
    scope->parent = frame;
    auto loop = std::make_shared<LoopData>();
    loop->items = list;
    loop->index0 = static_cast<int64_t>(i);
    scope->vars["loop"] = Value(std::move(loop));
    TL_TRY(assign(s, scope, list->items[i]));
    TL_ASSIGN_OR_RETURN(Flow flow, exec_body(s.body, scope));
    if (flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Value Interpreter::make_macro(const Stmt& s, const FramePtr& frame) {
  auto callable = std::make_shared<Callable>();
  callable->name = s.attr;
  const Stmt* def = &s;
  // Lookups happen in the defining scope at call time, as in jinja2. The interpreter owns that
  // scope for the whole render; the macro only points to it (the scope holds the macro).
  macro_scopes_.push_back(frame);
  std::weak_ptr<Frame> weak_closure = frame;
  callable->fn = [def, weak_closure](Interpreter& in, CallArgs& args) -> Result<Value> {
    FramePtr closure = weak_closure.lock();
    if (!closure) return internal_error("macro '{}' called after its template finished rendering", def->attr);
    const auto& params = def->targets;
    if (args.args.size() > params.size()) {
      return invalid_argument("macro '{}' takes not more than {} argument(s)", def->attr, params.size());
    }
    auto scope = std::make_shared<Frame>();
    scope->parent = closure;
    std::vector<bool> bound(params.size(), false);
    for (size_t i = 0; i < args.args.size(); ++i) {
      scope->vars[params[i]] = args.args[i];
      bound[i] = true;
    }
    for (auto& [key, value] : args.kwargs) {
      size_t idx = params.size();
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i] == key) idx = i;
      }
      if (idx == params.size()) return invalid_argument("macro '{}' takes no keyword argument '{}'", def->attr, key);
      if (bound[idx]) return invalid_argument("macro '{}' got multiple values for argument '{}'", def->attr, key);
      scope->vars[key] = value;
      bound[idx] = true;
    }
    const size_t first_default = params.size() - def->tests.size();
    for (size_t i = 0; i < params.size(); ++i) {
      if (bound[i]) continue;
      if (i >= first_default) {
        TL_ASSIGN_OR_RETURN(Value v, in.eval(*def->tests[i - first_default], scope));
        scope->vars[params[i]] = std::move(v);
      } else {
        scope->vars[params[i]] = Value::undefined(fmt::format("parameter '{}' was not provided", params[i]));
      }
    }
    if (in.call_depth_ >= in.limits_.max_call_depth) {
      return resource_exhausted("macro calls nest deeper than {}", in.limits_.max_call_depth);
    }
    ++in.call_depth_;
    auto text = in.capture(def->body, scope);
    --in.call_depth_;
    if (!text.is_ok()) return text.status();
    return Value(std::move(text).value());
  };
  return Value(std::move(callable));
}

Result<Value> Interpreter::call(const Value& callee, CallArgs& args) {
  TL_TRY(step());
  if (callee.is_undefined()) return undefined_error(callee);
  if (!callee.is_callable()) return invalid_argument("'{}' object is not callable", type_name(callee));
  return callee.as_callable().fn(*this, args);
}

// --- expressions ---------------------------------------------------------------------------------

Result<Value> Interpreter::eval(const Expr& e, const FramePtr& frame) {
  auto r = eval_inner(e, frame);
  if (!r.is_ok()) return locate(r.status(), e.line);
  return r;
}

Result<CallArgs> Interpreter::eval_args(const Expr& e, size_t first, const FramePtr& frame) {
  CallArgs args;
  args.line = e.line;
  for (size_t i = first; i < e.children.size(); ++i) {
    TL_ASSIGN_OR_RETURN(Value v, eval(*e.children[i], frame));
    args.args.push_back(std::move(v));
  }
  for (const auto& [key, expr] : e.kwargs) {
    TL_ASSIGN_OR_RETURN(Value v, eval(*expr, frame));
    args.kwargs.emplace_back(key, std::move(v));
  }
  return args;
}

Result<Value> Interpreter::eval_filter(const Expr& e, const FramePtr& frame, const Value* injected) {
  Value input;
  if (e.children[0]) {
    if (e.children[0]->kind == Expr::Kind::kFilter) {
      TL_ASSIGN_OR_RETURN(input, eval_filter(*e.children[0], frame, injected));
    } else {
      TL_ASSIGN_OR_RETURN(input, eval(*e.children[0], frame));
    }
  } else if (injected) {
    input = *injected;
  }
  TL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1, frame));
  auto r = apply_filter(*this, e.name, input, args);
  if (!r.is_ok()) return locate(r.status(), e.line);
  return r;
}

Result<Value> Interpreter::eval_compare(const Expr& e, const FramePtr& frame) {
  TL_ASSIGN_OR_RETURN(Value left, eval(*e.children[0], frame));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    TL_ASSIGN_OR_RETURN(Value right, eval(*e.children[i + 1], frame));
    const std::string& op = e.ops[i];
    bool result = false;
    if (op == "==") {
      result = equals(left, right);
    } else if (op == "!=") {
      result = !equals(left, right);
    } else if (op == "in" || op == "notin") {
      TL_ASSIGN_OR_RETURN(bool in, contains(right, left));
      result = (op == "in") == in;
    } else {
      if (left.is_undefined()) return undefined_error(left);
      if (right.is_undefined()) return undefined_error(right);
      TL_ASSIGN_OR_RETURN(int c, compare(left, right, op));
      result = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!result) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

Result<Value> Interpreter::eval_getitem(const Expr& e, const FramePtr& frame) {
  TL_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0], frame));
  const Expr& index = *e.children[1];
  if (index.kind == Expr::Kind::kSlice) {
    Value parts[3];
    const Value* ptrs[3] = {nullptr, nullptr, nullptr};
    for (int i = 0; i < 3; ++i) {
      if (!index.children[static_cast<size_t>(i)]) continue;
      TL_ASSIGN_OR_RETURN(parts[i], eval(*index.children[static_cast<size_t>(i)], frame));
      ptrs[i] = &parts[i];
    }
    return get_slice(*this, obj, ptrs[0], ptrs[1], ptrs[2]);
  }
  TL_ASSIGN_OR_RETURN(Value key, eval(index, frame));
  return get_item(*this, obj, key);
}

Result<Value> Interpreter::eval_inner(const Expr& e, const FramePtr& frame) {
  switch (e.kind) {
    case Expr::Kind::kConst: return e.value;
    case Expr::Kind::kName: {
      const Value* v = frame->find(e.name);
      if (!v) return Value::undefined(fmt::format("'{}' is undefined", e.name));
      return *v;
    }
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      for (const auto& c : e.children) {
        TL_ASSIGN_OR_RETURN(Value v, eval(*c, frame));
        items.push_back(std::move(v));
      }
      return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      auto d = std::make_shared<DictData>();
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        TL_ASSIGN_OR_RETURN(Value k, eval(*e.children[i], frame));
        TL_ASSIGN_OR_RETURN(Value v, eval(*e.children[i + 1], frame));
        if (k.is_list() && !k.as_list().is_tuple) return invalid_argument("unhashable type: 'list'");
        if (k.is_dict()) return invalid_argument("unhashable type: 'dict'");
        d->set(std::move(k), std::move(v));
      }
      return Value(std::move(d));
    }
    case Expr::Kind::kGetattr: {
      TL_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0], frame));
      return get_attr(*this, obj, e.name);
    }
    case Expr::Kind::kGetitem: return eval_getitem(e, frame);
    case Expr::Kind::kSlice: return invalid_argument("a slice is only valid inside [ ]");
    case Expr::Kind::kCall: {
      TL_ASSIGN_OR_RETURN(Value callee, eval(*e.children[0], frame));
      TL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1, frame));
      return call(callee, args);
    }
    case Expr::Kind::kFilter: return eval_filter(e, frame, nullptr);
    case Expr::Kind::kTest: {
      TL_ASSIGN_OR_RETURN(Value input, eval(*e.children[0], frame));
      TL_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, 1, frame));
      TL_ASSIGN_OR_RETURN(bool result, apply_test(*this, e.name, input, args));
      return Value(result);
    }
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos: {
      TL_ASSIGN_OR_RETURN(Value v, eval(*e.children[0], frame));
      return negate(v, e.kind == Expr::Kind::kNeg);
    }
    case Expr::Kind::kNot: {
      TL_ASSIGN_OR_RETURN(Value v, eval(*e.children[0], frame));
      return Value(!truthy(v));
    }
    case Expr::Kind::kBinary: {
      TL_ASSIGN_OR_RETURN(Value a, eval(*e.children[0], frame));
      TL_ASSIGN_OR_RETURN(Value b, eval(*e.children[1], frame));
      return binary_op(*this, e.name, a, b);
    }
    case Expr::Kind::kCompare: return eval_compare(e, frame);
    case Expr::Kind::kAnd: {
      TL_ASSIGN_OR_RETURN(Value a, eval(*e.children[0], frame));
      if (!truthy(a)) return a;
      return eval(*e.children[1], frame);
    }
    case Expr::Kind::kOr: {
      TL_ASSIGN_OR_RETURN(Value a, eval(*e.children[0], frame));
      if (truthy(a)) return a;
      return eval(*e.children[1], frame);
    }
    case Expr::Kind::kCondExpr: {
      TL_ASSIGN_OR_RETURN(Value test, eval(*e.children[0], frame));
      if (truthy(test)) return eval(*e.children[1], frame);
      if (e.children[2]) return eval(*e.children[2], frame);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was defined.", e.line));
    }
    case Expr::Kind::kConcat: {
      std::string s;
      for (const auto& c : e.children) {
        TL_ASSIGN_OR_RETURN(Value v, eval(*c, frame));
        s += to_str(v);
        TL_TRY(check_size(s.size()));
      }
      return Value(std::move(s));
    }
  }
  return internal_error("unknown expression kind");
}

}  // namespace tl::jinja
