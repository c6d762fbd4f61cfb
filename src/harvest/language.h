// Languages that harvest understands: source languages parsed with tree-sitter, and the side files
// (config formats, Markdown) that feed the cross-domain edges of the code graph.
//
// Usage:
//   tl::harvest::Language lang = tl::harvest::detect_language("pkg/util.py");   // kPython
//   const TSLanguage* ts = tl::harvest::tree_sitter_language(lang);             // nullptr if not code
#pragma once

#include <string>
#include <string_view>

struct TSLanguage;

namespace tl::harvest {

enum class Language {
  kUnknown,
  // Code, parsed with a tree-sitter grammar.
  kPython,
  kC,
  kCpp,
  kJavaScript,
  kTypeScript,
  kTsx,
  kGo,
  kRust,
  kJava,
  kBash,
  // Side files.
  kYaml,
  kJson,
  kToml,
  kIni,
  kDotEnv,
  kMarkdown,
  // Scripts harvest reads only for their doc headers (no grammar compiled in).
  kPowerShell,
};

// By extension and a few well-known names (".env", "Makefile" is not handled). Paths are repo-relative.
Language detect_language(std::string_view path);
// Stable lower-case name used in the graph, the report and examples ("python", "cpp", "yaml").
const char* language_name(Language lang);
bool is_code(Language lang);
bool is_config(Language lang);
// The compiled-in grammar for a code language; nullptr for side files and kUnknown.
const TSLanguage* tree_sitter_language(Language lang);
// Markdown code-fence tag for examples ("python", "c", "ts").
const char* fence_tag(Language lang);

}  // namespace tl::harvest
