// Side files of the code graph: config keys from YAML, JSON, TOML, INI and .env files, and Markdown
// doc sections.
//
// These feed the cross-domain edges (reads_config, documents), so what matters is the key path, the
// line and a readable value — not full format fidelity. YAML/TOML/INI/.env are read line by line
// (block mappings, sections, `key = value`), which copes with templated or slightly broken files that a
// strict parser would reject; JSON is parsed strictly (nlohmann, insertion-ordered) because a broken
// JSON file is worth a skip reason in the report.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "harvest/detail/extract.h"

namespace tl::harvest::detail {

namespace {

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string unquote(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) s = s.substr(1, s.size() - 2);
  return std::string(s);
}

std::string leaf_of(const std::string& path) {
  size_t p = path.find_last_of('.');
  return p == std::string::npos ? path : path.substr(p + 1);
}

// Calls fn(line_number, line) for each line.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  size_t pos = 0;
  int line = 1;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view l = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    fn(line, l);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
    ++line;
  }
}

void add_key(FileFacts& facts, std::string path, std::string_view value, int line) {
  ConfigKey k;
  k.leaf = leaf_of(path);
  k.path = std::move(path);
  k.value = std::string(trim(value).substr(0, 200));
  k.line = line;
  facts.config_keys.push_back(std::move(k));
}

bool valid_key(std::string_view k) {
  if (k.empty() || k.size() > 100) return false;
  for (char ch : k) {
    if (ch == ' ' || ch == '{' || ch == '}' || ch == '(' || ch == '"') return false;
  }
  return true;
}

void extract_yaml(std::string_view text, FileFacts& facts) {
  // (indent, key) stack of enclosing block mappings.
  std::vector<std::pair<size_t, std::string>> stack;
  bool in_block_scalar = false;
  size_t block_indent = 0;
  for_each_line(text, [&](int line, std::string_view l) {
    std::string_view t = trim(l);
    size_t indent = l.find_first_not_of(' ');
    if (in_block_scalar) {
      if (t.empty() || (indent != std::string_view::npos && indent > block_indent)) return;
      in_block_scalar = false;
    }
    if (t.empty() || t.front() == '#' || t == "---" || t == "...") return;
    // "- key: v" list items open a mapping two columns further in.
    while (t.starts_with("- ")) {
      t.remove_prefix(2);
      indent += 2;
    }
    size_t colon = std::string_view::npos;
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' ')) {
        colon = i;
        break;
      }
      if (t[i] == '"' || t[i] == '\'') {
        size_t close = t.find(t[i], i + 1);
        if (close == std::string_view::npos) break;
        i = close;
      }
    }
    if (colon == std::string_view::npos) return;
    std::string key = unquote(t.substr(0, colon));
    if (!valid_key(key)) return;
    std::string_view value = trim(t.substr(colon + 1));
    if (!value.empty() && value.front() == '#') value = {};
    while (!stack.empty() && stack.back().first >= indent) stack.pop_back();
    std::string path;
    for (auto& [ind, k] : stack) path += k + ".";
    path += key;
    add_key(facts, path, value, line);
    if (value.empty()) stack.emplace_back(indent, key);
    if (value == "|" || value == ">" || value == "|-" || value == ">-") {
      in_block_scalar = true;
      block_indent = indent;
    }
  });
}

void extract_sections_format(std::string_view text, FileFacts& facts, bool toml) {
  std::string section;
  for_each_line(text, [&](int line, std::string_view l) {
    std::string_view t = trim(l);
    if (t.empty() || t.front() == '#' || t.front() == ';') return;
    if (t.front() == '[') {
      std::string_view s = t;
      while (!s.empty() && s.front() == '[') s.remove_prefix(1);
      size_t close = s.find(']');
      section = close == std::string_view::npos ? std::string() : unquote(s.substr(0, close));
      return;
    }
    size_t eq = t.find('=');
    if (!toml && eq == std::string_view::npos) eq = t.find(':');
    if (eq == std::string_view::npos) return;
    std::string key = unquote(t.substr(0, eq));
    if (!valid_key(key)) return;
    add_key(facts, section.empty() ? key : section + "." + key, t.substr(eq + 1), line);
  });
}

void extract_dotenv(std::string_view text, FileFacts& facts) {
  for_each_line(text, [&](int line, std::string_view l) {
    std::string_view t = trim(l);
    if (t.empty() || t.front() == '#') return;
    if (t.starts_with("export ")) t.remove_prefix(7);
    size_t eq = t.find('=');
    if (eq == std::string_view::npos) return;
    std::string key(trim(t.substr(0, eq)));
    if (!valid_key(key)) return;
    add_key(facts, key, t.substr(eq + 1), line);
  });
}

// JSON keys in document order; the line is found by searching for the quoted key after the previous
// key's position (exact for the usual one-key-per-line layout, approximate otherwise).
void walk_json(const nlohmann::ordered_json& j, const std::string& prefix, std::string_view text, size_t& cursor,
               std::vector<size_t>& line_starts, FileFacts& facts, int depth) {
  if (depth > 12 || facts.config_keys.size() > 5000) return;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
      std::string needle = "\"" + it.key() + "\"";
      size_t at = text.find(needle, cursor);
      int line = 0;
      if (at != std::string_view::npos) {
        cursor = at + needle.size();
        line = static_cast<int>(std::upper_bound(line_starts.begin(), line_starts.end(), at) - line_starts.begin());
      }
      std::string value = it.value().is_structured() ? std::string() : it.value().dump();
      if (valid_key(it.key())) add_key(facts, path, value, line);
      walk_json(it.value(), path, text, cursor, line_starts, facts, depth + 1);
    }
  } else if (j.is_array()) {
    for (const auto& e : j) walk_json(e, prefix, text, cursor, line_starts, facts, depth + 1);
  }
}

}  // namespace

bool extract_config(std::string_view text, FileFacts& facts, std::string& why) {
  switch (facts.language) {
    case Language::kYaml: extract_yaml(text, facts); return true;
    case Language::kToml: extract_sections_format(text, facts, true); return true;
    case Language::kIni: extract_sections_format(text, facts, false); return true;
    case Language::kDotEnv: extract_dotenv(text, facts); return true;
    case Language::kJson: {
      auto j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
      if (j.is_discarded()) {
        why = "invalid JSON";
        return false;
      }
      std::vector<size_t> line_starts{0};
      for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n') line_starts.push_back(i + 1);
      }
      size_t cursor = 0;
      walk_json(j, "", text, cursor, line_starts, facts, 0);
      return true;
    }
    default: return true;
  }
}

void extract_markdown(std::string_view text, FileFacts& facts) {
  bool in_fence = false;
  std::vector<std::string> path_stack;  // heading text per level
  DocSection* cur = nullptr;
  int last_line = 0;
  auto add_mentions_from_code = [&](std::string_view code) {
    // identifier( and `identifier` both name code.
    size_t i = 0;
    while (i < code.size()) {
      auto is_id = [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
      };
      if (!is_id(code[i])) { ++i; continue; }
      size_t j = i;
      while (j < code.size() && is_id(code[j])) ++j;
      if (cur && j - i >= 3) cur->code_mentions.emplace_back(code.substr(i, j - i));
      i = j;
    }
  };
  for_each_line(text, [&](int line, std::string_view l) {
    last_line = line;
    std::string_view t = trim(l);
    if (t.starts_with("```") || t.starts_with("~~~")) {
      in_fence = !in_fence;
      return;
    }
    if (in_fence) {
      if (cur) {
        cur->text.append(l);
        cur->text += '\n';
        add_mentions_from_code(l);
      }
      return;
    }
    if (t.starts_with("#")) {
      size_t level = t.find_first_not_of('#');
      if (level != std::string_view::npos && level <= 6 && t[level] == ' ') {
        if (cur) cur->end_line = line - 1;
        DocSection s;
        s.level = static_cast<int>(level);
        s.heading = std::string(trim(t.substr(level)));
        path_stack.resize(level);
        path_stack[level - 1] = s.heading;
        for (const auto& h : path_stack) {
          if (h.empty()) continue;
          if (!s.path.empty()) s.path += " > ";
          s.path += h;
        }
        s.start_line = line;
        facts.sections.push_back(std::move(s));
        cur = &facts.sections.back();
        return;
      }
    }
    if (!cur) return;
    if (cur->text.size() < 20000) {
      cur->text.append(l);
      cur->text += '\n';
    }
    // `code spans`
    size_t pos = 0;
    while ((pos = l.find('`', pos)) != std::string_view::npos) {
      size_t close = l.find('`', pos + 1);
      if (close == std::string_view::npos) break;
      if (close - pos <= 80) add_mentions_from_code(l.substr(pos + 1, close - pos - 1));
      pos = close + 1;
    }
  });
  if (cur) cur->end_line = last_line;
}

}  // namespace tl::harvest::detail
