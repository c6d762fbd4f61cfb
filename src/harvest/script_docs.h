// Script doc headers: the structured help that scripts carry at their top, read as data so harvest can
// turn it into instruction/output pairs ("what does deploy.ps1 do?", "how do I run backup.sh?").
//
// Three dialects, each recognised only when it is unmistakably documentation:
//   PowerShell   comment-based help: a `<# … #>` block holding `.SYNOPSIS`, `.DESCRIPTION`,
//                `.PARAMETER Name`, `.EXAMPLE` (and `.NOTES`, ignored) keywords. A block right before
//                `function Name` or right at the start of its body documents that function; otherwise it
//                documents the script.
//   shell        the leading `#` comment block (after the shebang) when it contains a `Usage:` line.
//   Python       the module docstring (first statement, triple-quoted).
// The text given here has already been redacted; nothing is read from disk.
//
// Usage:
//   for (const tl::harvest::ScriptDoc& d : tl::harvest::parse_script_docs("tools/deploy.ps1",
//                                                                         tl::harvest::Language::kPowerShell, text))
//     std::printf("%s: %s\n", d.name.c_str(), d.synopsis.c_str());
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harvest/language.h"

namespace tl::harvest {

struct ScriptDocExample {
  std::string code;  // the command(s), prompts ("PS> ") stripped
  std::string text;  // what it does, in prose (may be empty)
};

struct ScriptDoc {
  std::string file;  // repo-relative path
  Language language = Language::kUnknown;
  std::string name;          // the function it documents, or the file name for script/module help
  bool is_function = false;  // PowerShell help attached to a function
  int start_line = 0, end_line = 0;  // the doc block, 1-based inclusive
  std::string synopsis;              // first paragraph / .SYNOPSIS
  std::string description;           // remaining prose / .DESCRIPTION
  std::string usage;                 // the `Usage:` paragraph (shell, Python)
  std::vector<std::pair<std::string, std::string>> parameters;  // .PARAMETER name → text
  std::vector<ScriptDocExample> examples;                       // .EXAMPLE blocks
};

// All doc headers of one file (at most one for shell and Python; one per help block for PowerShell).
// Files of other languages, and headers without a synopsis, description or usage, give nothing.
std::vector<ScriptDoc> parse_script_docs(std::string_view path, Language language, std::string_view text);

}  // namespace tl::harvest
