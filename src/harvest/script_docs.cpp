// Parsers for script doc headers (see script_docs.h): PowerShell comment-based help, shell usage
// headers and Python module docstrings.
//
// All three work on lines of already-redacted text and are deliberately strict about what counts as a
// header (a help keyword, a `Usage:` line, a docstring as the first statement): a false header would
// become a confident but wrong training pair, while a missed one only costs an example.
#include "harvest/script_docs.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace tl::harvest {

namespace {

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view l = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    out.emplace_back(l);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Removes the indentation common to all non-blank lines and blank lines at both ends, then joins.
std::string dedent_join(std::vector<std::string> lines) {
  while (!lines.empty() && blank(lines.front())) lines.erase(lines.begin());
  while (!lines.empty() && blank(lines.back())) lines.pop_back();
  size_t indent = std::string::npos;
  for (const auto& l : lines) {
    if (blank(l)) continue;
    indent = std::min(indent, l.find_first_not_of(" \t"));
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    std::string l = lines[i];
    while (!l.empty() && (l.back() == ' ' || l.back() == '\t')) l.pop_back();
    if (!blank(l) && indent != std::string::npos) out += l.substr(std::min(indent, l.size()));
  }
  return out;
}

// Splits dedented text into paragraphs separated by blank lines.
std::vector<std::string> paragraphs(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (const auto& l : split_lines(text)) {
    if (blank(l)) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      continue;
    }
    if (!cur.empty()) cur += '\n';
    cur += l;
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool starts_usage(const std::string& para) { return lower(trim(para)).starts_with("usage:"); }

// Shared by shell and Python: first paragraph = synopsis (unless it is the usage), the `Usage:` paragraph
// = usage, the rest = description.
void fill_from_prose(ScriptDoc& d, const std::string& text) {
  std::vector<std::string> paras = paragraphs(text);
  std::vector<std::string> rest;
  for (size_t i = 0; i < paras.size(); ++i) {
    if (starts_usage(paras[i]) && d.usage.empty()) {
      d.usage = paras[i];
    } else if (i == 0) {
      d.synopsis = paras[i];
    } else {
      rest.push_back(paras[i]);
    }
  }
  for (size_t i = 0; i < rest.size(); ++i) {
    if (i) d.description += "\n\n";
    d.description += rest[i];
  }
}

std::string base_name(std::string_view path) {
  size_t slash = path.find_last_of('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// ---- shell ------------------------------------------------------------------------------------
std::vector<ScriptDoc> shell_docs(std::string_view path, std::string_view text) {
  std::vector<std::string> lines = split_lines(text);
  size_t i = 0;
  if (i < lines.size() && lines[i].starts_with("#!")) ++i;
  while (i < lines.size() && blank(lines[i])) ++i;
  size_t first = i;
  std::vector<std::string> block;
  for (; i < lines.size(); ++i) {
    std::string t = trim(lines[i]);
    if (!t.starts_with("#")) break;
    std::string body = t.substr(1);
    if (body.starts_with(" ")) body = body.substr(1);
    block.push_back(body);
  }
  bool has_usage = false;
  for (const auto& l : block) has_usage |= lower(trim(l)).starts_with("usage:");
  if (!has_usage) return {};
  ScriptDoc d;
  d.file = std::string(path);
  d.language = Language::kBash;
  d.name = base_name(path);
  d.start_line = static_cast<int>(first) + 1;
  d.end_line = static_cast<int>(i);
  fill_from_prose(d, dedent_join(block));
  return {d};
}

// ---- Python -----------------------------------------------------------------------------------
std::vector<ScriptDoc> python_docs(std::string_view path, std::string_view text) {
  std::vector<std::string> lines = split_lines(text);
  size_t i = 0;
  while (i < lines.size() && (blank(lines[i]) || trim(lines[i]).starts_with("#"))) ++i;
  if (i >= lines.size()) return {};
  std::string first = trim(lines[i]);
  size_t q = 0;
  while (q < first.size() && q < 2 && std::strchr("rRuU", first[q]) != nullptr) ++q;
  std::string quote = first.substr(q, 3);
  if (quote != "\"\"\"" && quote != "'''") return {};
  // Collect until the closing quote (which may be on the first line).
  std::string rest = first.substr(q + 3);
  std::vector<std::string> body;
  size_t end_line = i;
  size_t close = rest.find(quote);
  if (close != std::string::npos) {
    body.push_back(rest.substr(0, close));
  } else {
    body.push_back(rest);
    bool closed = false;
    for (size_t k = i + 1; k < lines.size(); ++k) {
      size_t c = lines[k].find(quote);
      if (c != std::string::npos) {
        body.push_back(lines[k].substr(0, c));
        end_line = k;
        closed = true;
        break;
      }
      body.push_back(lines[k]);
    }
    if (!closed) return {};  // unterminated: the parser will flag the file; no header from it
  }
  // inspect.cleandoc: the first line keeps no indentation, the others lose their common indentation.
  std::string head = trim(body.front());
  body.erase(body.begin());
  bool gap = !body.empty() && blank(body.front());  // a blank line after the summary separates paragraphs
  std::string tail = dedent_join(body);
  std::string doc = head.empty() ? tail : tail.empty() ? head : head + (gap ? "\n\n" : "\n") + tail;
  if (doc.empty()) return {};
  ScriptDoc d;
  d.file = std::string(path);
  d.language = Language::kPython;
  d.name = base_name(path);
  d.start_line = static_cast<int>(i) + 1;
  d.end_line = static_cast<int>(end_line) + 1;
  fill_from_prose(d, doc);
  return {d};
}

// ---- PowerShell -------------------------------------------------------------------------------
// `function Verb-Noun` at the start of a trimmed line → "Verb-Noun".
std::string function_name_at(const std::string& line) {
  std::string t = trim(line);
  if (!lower(t).starts_with("function ")) return {};
  t = trim(t.substr(9));
  size_t e = 0;
  while (e < t.size() && (std::isalnum(static_cast<unsigned char>(t[e])) || t[e] == '-' || t[e] == '_' ||
                          t[e] == ':'))
    ++e;
  return t.substr(0, e);
}

// Splits `.EXAMPLE` content into code and prose: lines with a `PS>` / `PS C:\>` prompt are code;
// without prompts the first paragraph is code and the rest prose.
ScriptDocExample split_example(const std::string& content) {
  ScriptDocExample ex;
  std::vector<std::string> code, text;
  bool prompts = false;
  for (const auto& l : split_lines(content)) prompts |= trim(l).starts_with("PS>") || trim(l).starts_with("PS ");
  if (prompts) {
    for (const auto& l : split_lines(content)) {
      std::string t = trim(l);
      size_t gt = t.find('>');
      if ((t.starts_with("PS>") || t.starts_with("PS ")) && gt != std::string::npos) code.push_back(trim(t.substr(gt + 1)));
      else text.push_back(l);
    }
  } else {
    std::vector<std::string> paras = paragraphs(content);
    if (paras.empty()) return ex;
    if (paras.size() == 1) {
      auto ls = split_lines(paras[0]);
      code.push_back(ls[0]);
      text.assign(ls.begin() + 1, ls.end());
    } else {
      code = split_lines(paras[0]);
      for (size_t i = 1; i < paras.size(); ++i) {
        if (i > 1) text.push_back("");
        for (const auto& l : split_lines(paras[i])) text.push_back(l);
      }
    }
  }
  ex.code = dedent_join(code);
  // Prose is re-flowed to one paragraph per blank-line group, lines joined by spaces.
  std::string flowed;
  for (const auto& p : paragraphs(dedent_join(text))) {
    std::string para;
    for (const auto& l : split_lines(p)) {
      if (!para.empty()) para += ' ';
      para += trim(l);
    }
    if (!flowed.empty()) flowed += "\n\n";
    flowed += para;
  }
  ex.text = flowed;
  return ex;
}

std::vector<ScriptDoc> powershell_docs(std::string_view path, std::string_view text) {
  std::vector<std::string> lines = split_lines(text);
  std::vector<ScriptDoc> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t open = lines[i].find("<#");
    if (open == std::string::npos || trim(lines[i]).rfind("<#", 0) != 0) continue;
    size_t end = i;
    while (end < lines.size() && lines[end].find("#>") == std::string::npos) ++end;
    if (end >= lines.size()) break;  // unterminated block
    std::vector<std::string> block;
    for (size_t k = i; k <= end; ++k) {
      std::string l = lines[k];
      if (k == end) l.erase(l.find("#>"));
      if (k == i) l.erase(0, l.find("<#") + 2);
      block.push_back(l);
    }
    // Sections: keyword lines start a section.
    struct Section {
      std::string key, arg;
      std::vector<std::string> lines;
    };
    std::vector<Section> sections;
    for (const auto& l : block) {
      std::string t = trim(l);
      if (t.size() > 1 && t[0] == '.' && std::isalpha(static_cast<unsigned char>(t[1]))) {
        size_t sp = t.find_first_of(" \t");
        std::string key = lower(t.substr(1, sp == std::string::npos ? std::string::npos : sp - 1));
        static const char* kKeys[] = {"synopsis", "description", "parameter", "example", "notes", "inputs",
                                      "outputs",  "link",        "component", "role",    "functionality"};
        if (std::any_of(std::begin(kKeys), std::end(kKeys), [&](const char* k) { return key == k; })) {
          sections.push_back({key, sp == std::string::npos ? std::string() : trim(t.substr(sp)), {}});
          continue;
        }
      }
      if (!sections.empty()) sections.back().lines.push_back(l);
    }
    ScriptDoc d;
    for (const auto& s : sections) {
      std::string content = dedent_join(s.lines);
      if (s.key == "synopsis") d.synopsis = content;
      else if (s.key == "description") d.description = content;
      else if (s.key == "parameter" && !s.arg.empty()) d.parameters.emplace_back(s.arg, content);
      else if (s.key == "example") {
        ScriptDocExample ex = split_example(content);
        if (!ex.code.empty()) d.examples.push_back(std::move(ex));
      }
    }
    size_t block_start = i, block_end = end;
    i = end;
    if (d.synopsis.empty() && d.description.empty()) continue;
    d.file = std::string(path);
    d.language = Language::kPowerShell;
    // Which function: the next non-blank line after the block, or the previous non-blank line before it
    // (help as the first thing inside the function body).
    for (size_t k = end + 1; k < lines.size(); ++k) {
      if (blank(lines[k])) continue;
      d.name = function_name_at(lines[k]);
      break;
    }
    if (d.name.empty()) {
      for (size_t k = block_start; k-- > 0;) {
        if (blank(lines[k])) continue;
        std::string t = trim(lines[k]);
        if (t == "{" && k > 0) t = trim(lines[k - 1]) + " {";
        if (t.ends_with("{")) d.name = function_name_at(t);
        break;
      }
    }
    d.is_function = !d.name.empty();
    if (!d.is_function) d.name = base_name(path);
    d.start_line = static_cast<int>(block_start) + 1;
    d.end_line = static_cast<int>(block_end) + 1;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

std::vector<ScriptDoc> parse_script_docs(std::string_view path, Language language, std::string_view text) {
  switch (language) {
    case Language::kPowerShell: return powershell_docs(path, text);
    case Language::kBash: return shell_docs(path, text);
    case Language::kPython: return python_docs(path, text);
    default: return {};
  }
}

}  // namespace tl::harvest
