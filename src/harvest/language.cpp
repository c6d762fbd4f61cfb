// Extension → Language mapping and the table of compiled-in tree-sitter grammars (see
// cmake/grammars.cmake for where they come from).
#include "harvest/language.h"

#include <tree_sitter/api.h>

#include <algorithm>
#include <cctype>

extern "C" {
const TSLanguage* tree_sitter_python();
const TSLanguage* tree_sitter_c();
const TSLanguage* tree_sitter_cpp();
const TSLanguage* tree_sitter_javascript();
const TSLanguage* tree_sitter_typescript();
const TSLanguage* tree_sitter_tsx();
const TSLanguage* tree_sitter_go();
const TSLanguage* tree_sitter_rust();
const TSLanguage* tree_sitter_java();
const TSLanguage* tree_sitter_bash();
}

namespace tl::harvest {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

Language detect_language(std::string_view path) {
  size_t slash = path.find_last_of('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (base == ".env" || base.starts_with(".env.") || base.ends_with(".env")) return Language::kDotEnv;
  size_t dot = base.find_last_of('.');
  if (dot == std::string_view::npos) return Language::kUnknown;
  std::string ext = lower(base.substr(dot + 1));
  if (ext == "py" || ext == "pyi") return Language::kPython;
  if (ext == "c" || ext == "h") return Language::kC;
  if (ext == "cc" || ext == "cpp" || ext == "cxx" || ext == "hpp" || ext == "hh" || ext == "hxx") return Language::kCpp;
  if (ext == "js" || ext == "mjs" || ext == "cjs" || ext == "jsx") return Language::kJavaScript;
  if (ext == "ts" || ext == "mts" || ext == "cts") return Language::kTypeScript;
  if (ext == "tsx") return Language::kTsx;
  if (ext == "go") return Language::kGo;
  if (ext == "rs") return Language::kRust;
  if (ext == "java") return Language::kJava;
  if (ext == "sh" || ext == "bash") return Language::kBash;
  if (ext == "yaml" || ext == "yml") return Language::kYaml;
  if (ext == "json") return Language::kJson;
  if (ext == "toml") return Language::kToml;
  if (ext == "ini" || ext == "cfg" || ext == "conf") return Language::kIni;
  if (ext == "md" || ext == "markdown") return Language::kMarkdown;
  if (ext == "ps1" || ext == "psm1") return Language::kPowerShell;
  return Language::kUnknown;
}

const char* language_name(Language lang) {
  switch (lang) {
    case Language::kUnknown: return "unknown";
    case Language::kPython: return "python";
    case Language::kC: return "c";
    case Language::kCpp: return "cpp";
    case Language::kJavaScript: return "javascript";
    case Language::kTypeScript: return "typescript";
    case Language::kTsx: return "tsx";
    case Language::kGo: return "go";
    case Language::kRust: return "rust";
    case Language::kJava: return "java";
    case Language::kBash: return "bash";
    case Language::kYaml: return "yaml";
    case Language::kJson: return "json";
    case Language::kToml: return "toml";
    case Language::kIni: return "ini";
    case Language::kDotEnv: return "dotenv";
    case Language::kMarkdown: return "markdown";
    case Language::kPowerShell: return "powershell";
  }
  return "unknown";
}

bool is_code(Language lang) { return tree_sitter_language(lang) != nullptr; }

bool is_config(Language lang) {
  return lang == Language::kYaml || lang == Language::kJson || lang == Language::kToml || lang == Language::kIni ||
         lang == Language::kDotEnv;
}

const TSLanguage* tree_sitter_language(Language lang) {
  switch (lang) {
    case Language::kPython: return tree_sitter_python();
    case Language::kC: return tree_sitter_c();
    case Language::kCpp: return tree_sitter_cpp();
    case Language::kJavaScript: return tree_sitter_javascript();
    case Language::kTypeScript: return tree_sitter_typescript();
    case Language::kTsx: return tree_sitter_tsx();
    case Language::kGo: return tree_sitter_go();
    case Language::kRust: return tree_sitter_rust();
    case Language::kJava: return tree_sitter_java();
    case Language::kBash: return tree_sitter_bash();
    default: return nullptr;
  }
}

const char* fence_tag(Language lang) {
  switch (lang) {
    case Language::kTypeScript:
    case Language::kTsx: return "ts";
    default: return language_name(lang);
  }
}

}  // namespace tl::harvest
