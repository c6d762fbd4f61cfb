// Syntax tree of the Jinja-subset renderer, produced by jinja_parser and walked by jinja_interpreter.
//
// Two node types, Expr and Stmt, each a tagged struct rather than a class hierarchy: the evaluator
// switches on `kind`, which keeps every construct's semantics in one place next to its siblings.
// Every node records its source line, so runtime errors can name it as jinja2's tracebacks do.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/detail/jinja_value.h"

namespace tl::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kConst,      // value
    kName,       // name
    kList,       // children
    kTuple,      // children
    kDict,       // children: key, value, key, value, ...
    kGetattr,    // children[0].name
    kGetitem,    // children[0][children[1]]
    kSlice,      // children: start, stop, step (each may be null); only as a Getitem argument
    kCall,       // children[0](children[1..], kwargs)
    kFilter,     // children[0] | name(children[1..], kwargs); children[0] null in filter blocks
    kTest,       // children[0] is name(children[1..], kwargs)
    kNeg,        // -children[0]
    kPos,        // +children[0]
    kNot,        // not children[0]
    kBinary,     // children[0] op children[1]; op in + - * / // % **
    kCompare,    // children[0] ops[0] children[1] ops[1] children[2] ... (chained like Python)
    kAnd,        // children[0] and children[1]
    kOr,         // children[0] or children[1]
    kCondExpr,   // children[1] if children[0] else children[2] (children[2] may be null)
    kConcat,     // children[0] ~ children[1] ~ ...
  };
  Kind kind;
  int line = 0;
  Value value;               // kConst
  std::string name;          // kName, kGetattr (attribute), kFilter/kTest (name), kBinary (op)
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // kCall, kFilter, kTest
  std::vector<std::string> ops;                          // kCompare: == != < <= > >= in notin

  Expr(Kind k, int l) : kind(k), line(l) {}
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,        // text: template data
    kPrint,       // {{ expr }}
    kIf,          // tests[i] → bodies[i]; else_body
    kFor,         // for targets in expr [if filter]: body [else: else_body]
    kSet,         // set targets = expr   (targets.size() > 1 unpacks)
    kSetAttr,     // set targets[0].attr = expr   (namespace attribute)
    kSetBlock,    // set targets[0] [| filter] %} body {% endset
    kMacro,       // macro name(params = defaults) body
    kFilterBlock, // filter <filter chain in expr> body
    kWith,        // with targets[i] = values[i]: body
    kBreak,
    kContinue,
    kGeneration,  // transformers' {% generation %} marker: renders its body unchanged
  };
  Kind kind;
  int line = 0;
  std::string text;                 // kText
  ExprPtr expr;                     // kPrint, kFor (iterable), kSet*, kFilterBlock (filter chain)
  ExprPtr filter;                   // kFor: the `if` filter; kSetBlock: optional filter chain
  std::vector<std::string> targets; // kFor, kSet, kSetAttr, kSetBlock, kWith; kMacro params
  std::string attr;                 // kSetAttr attribute; kMacro name
  std::vector<ExprPtr> tests;       // kIf conditions; kMacro defaults (for the last params); kWith values
  std::vector<Body> bodies;         // kIf branch bodies
  Body body;                        // kFor, kSetBlock, kMacro, kFilterBlock, kWith, kGeneration
  Body else_body;                   // kIf, kFor
  bool unpack = false;              // kFor/kSet: target was a tuple (even of one name)

  Stmt(Kind k, int l) : kind(k), line(l) {}
};

struct TemplateAst {
  Body body;
};

}  // namespace tl::jinja
