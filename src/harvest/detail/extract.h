// Per-file facts extracted before the graph is linked: what one file defines, calls, imports and
// mentions. Produced independently per file (in parallel), then merged by CodeGraph::build in sorted
// path order, so the graph is deterministic regardless of thread scheduling.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "harvest/language.h"
#include "harvest/script_docs.h"

namespace tl::harvest::detail {

struct RawFunction {
  std::string name;
  std::string qualified_name;
  int class_index = -1;  // into FileFacts::classes, for methods
  int start_line = 0, end_line = 0;
  std::string signature, docstring, body;
  // Byte range [doc_begin, doc_end) of an in-body docstring statement within `body` (Python), -1 if none.
  int doc_begin = -1, doc_end = -1;
  std::vector<std::string> params;
  int complexity = 1;
  int error_handlers = 0;
  bool is_test = false;
  bool parse_error = false;
};

struct RawClass {
  std::string name;
  std::string qualified_name;
  int start_line = 0, end_line = 0;
  std::string docstring, body;
  std::vector<std::string> bases;
};

struct RawCall {
  int function_index = -1;  // caller; -1 for file-level code
  std::string name;         // callee's last identifier ("get" for self.cache.get())
  std::string receiver;     // what precedes it ("self.cache"), empty for plain calls
  int line = 0;
};

struct RawImport {
  std::string text;                 // the import statement, trimmed
  std::vector<std::string> tokens;  // identifier segments ("os", "path", "join")
  int line = 0;
};

struct RawString {
  int function_index = -1;
  std::string value;  // contents without quotes
  int line = 0;
};

struct ConfigKey {
  std::string path;  // dotted: "database.host"; .env/INI: "DB_HOST", "section.key"
  std::string leaf;  // "host"
  std::string value;
  int line = 0;
};

struct DocSection {
  std::string heading;
  std::string path;  // "Intro > Setup"
  int level = 1;
  int start_line = 0, end_line = 0;
  std::string text;
  std::vector<std::string> code_mentions;  // `identifier` and identifier() spans
};

struct FileFacts {
  std::string path;
  Language language = Language::kUnknown;
  int lines = 0;
  bool is_test_file = false;
  std::vector<RawFunction> functions;
  std::vector<RawClass> classes;
  std::vector<RawCall> calls;
  std::vector<RawImport> imports;
  std::vector<RawString> strings;
  std::vector<ConfigKey> config_keys;
  std::vector<DocSection> sections;
  std::vector<ScriptDoc> script_docs;  // PowerShell help, shell usage header, Python module docstring
  size_t error_bytes = 0;  // bytes covered by top-level ERROR nodes
  bool has_error = false;
};

// Parses `text` (already redacted) with the language's grammar and fills `facts`. Returns false only if
// tree-sitter could not produce a tree at all (then `why` says so).
bool extract_code(std::string_view text, FileFacts& facts, std::string& why);
// Config formats: YAML, JSON, TOML, INI, .env. Returns false with `why` on a malformed JSON document
// (the line-based formats are read leniently, line by line).
bool extract_config(std::string_view text, FileFacts& facts, std::string& why);
void extract_markdown(std::string_view text, FileFacts& facts);
bool is_test_path(std::string_view path);

}  // namespace tl::harvest::detail
