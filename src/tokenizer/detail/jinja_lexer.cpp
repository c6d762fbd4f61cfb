// jinja2's lexer (lexer.py, Lexer.tokeniter) for trim_blocks=True, lstrip_blocks=True, written as a
// hand scanner. Each step names the jinja2 rule it reproduces; see jinja_lexer.h for the rules.
#include "tokenizer/detail/jinja_lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "tokenizer/detail/jinja_text.h"

namespace tl::jinja {
namespace {

class Lexer {
 public:
  Lexer(std::string source, const std::string& origin) : src_(std::move(source)), origin_(origin) {}

  Result<std::vector<Token>> run() {
    size_t pos = 0;
    bool line_starting = true;  // jinja2: did the previous match end with "\n"?
    const size_t n = src_.size();
    while (pos < n) {
      const size_t t = find_tag_start(pos);
      if (t == std::string::npos) {
        emit_data(pos, src_.substr(pos));
        break;
      }
      const char kind = src_[t + 1];
      size_t after = t + 2;
      char sign = 0;
      if (after < n && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];

      // `{% raw %}` is matched before the plain block start, as in jinja2's root rule.
      size_t raw_body = std::string::npos;
      if (kind == '%') raw_body = match_raw_begin(after);

      std::string text = src_.substr(pos, t - pos);
      apply_lstrip(text, sign, kind != '{', line_starting);
      emit_data(pos, std::move(text));
      line_starting = false;

      if (raw_body != std::string::npos) {
        line_starting = src_[raw_body - 1] == '\n';
        TL_ASSIGN_OR_RETURN(pos, lex_raw(t, raw_body, line_starting));
        continue;
      }
      if (kind == '#') {
        TL_ASSIGN_OR_RETURN(pos, lex_comment(t, after, line_starting));
        continue;
      }
      TL_ASSIGN_OR_RETURN(pos, lex_tag(t, after, kind == '%', line_starting));
    }
    Token eof;
    eof.type = TokenType::kEof;
    set_position(eof, src_.size());
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

  // Newlines as jinja2 normalises them: \r\n and \r become \n; one trailing newline is dropped
  // (keep_trailing_newline=False).
  static std::string normalize(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '\r') {
        out.push_back('\n');
        if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
      } else {
        out.push_back(in[i]);
      }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

 private:
  size_t find_tag_start(size_t pos) const {
    while (true) {
      const size_t b = src_.find('{', pos);
      if (b == std::string::npos || b + 1 >= src_.size()) return std::string::npos;
      const char c = src_[b + 1];
      if (c == '{' || c == '%' || c == '#') return b;
      pos = b + 1;
    }
  }

  // Decodes the code point at `pos` (1 byte for invalid UTF-8) and returns its byte length.
  size_t cp_at(size_t pos, char32_t* cp) const {
    const std::u32string one = utf8_decode(std::string_view(src_).substr(pos, std::min<size_t>(4, src_.size() - pos)));
    *cp = one.empty() ? 0 : one[0];
    if (*cp < 0x80) return 1;
    if (*cp < 0x800) return 2;
    if (*cp < 0x10000) return 3;
    return 4;
  }

  bool is_space_at(size_t pos, size_t* len) const {
    if (pos >= src_.size()) return false;
    char32_t c = 0;
    const size_t l = cp_at(pos, &c);
    // An invalid byte decodes to itself (>= 0x80) with length 1; only real spaces count.
    if (!py_isspace(c)) return false;
    if (c >= 0x80 && static_cast<unsigned char>(src_[pos]) < 0xC0) return false;
    *len = l;
    return true;
  }

  size_t skip_spaces(size_t pos) const {
    size_t len = 0;
    while (is_space_at(pos, &len)) pos += len;
    return pos;
  }

  bool starts_with(size_t pos, std::string_view s) const {
    return src_.compare(pos, s.size(), s) == 0;
  }

  // jinja2 root_raw_re: {%(-|+|)\s*raw\s*(?:-%}\s*|%}) — returns the body start or npos.
  size_t match_raw_begin(size_t after) const {
    size_t p = skip_spaces(after);
    if (!starts_with(p, "raw")) return std::string::npos;
    p = skip_spaces(p + 3);
    if (starts_with(p, "-%}")) return skip_spaces(p + 3);
    if (starts_with(p, "%}")) return p + 2;
    return std::string::npos;
  }

  // jinja2 OptionalLStrip: "-" strips all trailing whitespace of the text; otherwise, for block and
  // comment tags not opened with "+", whitespace between the last newline (or the start of a line)
  // and the tag is removed.
  void apply_lstrip(std::string& text, char sign, bool lstrip_allowed, bool line_starting) const {
    if (sign == '-') {
      text = py_strip(text, nullptr, false, true);
      return;
    }
    if (sign == '+' || !lstrip_allowed) return;
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting) return;
    const std::string_view tail = std::string_view(text).substr(l_pos);
    if (tail.empty()) return;
    for (char32_t c : utf8_decode(tail)) {
      if (!py_isspace(c)) return;
    }
    text.resize(l_pos);
  }

  void emit_data(size_t pos, std::string text) {
    if (text.empty()) return;
    Token tok;
    tok.type = TokenType::kData;
    tok.text = std::move(text);
    set_position(tok, pos);
    tokens_.push_back(std::move(tok));
  }

  void set_position(Token& tok, size_t pos) {
    // Lines counted incrementally: tokens are emitted in source order (restart if asked earlier).
    if (pos < line_pos_) {
      line_pos_ = 0;
      line_start_ = 0;
      line_ = 1;
    }
    while (line_pos_ < pos && line_pos_ < src_.size()) {
      if (src_[line_pos_] == '\n') {
        ++line_;
        line_start_ = line_pos_ + 1;
      }
      ++line_pos_;
    }
    tok.line = line_;
    tok.col = static_cast<int>(utf8_length(std::string_view(src_).substr(line_start_, pos - line_start_))) + 1;
  }

  Status error_at(size_t pos, const std::string& what) {
    Token tmp;
    set_position(tmp, pos);
    return invalid_argument("{}:{}:{}: {}", origin_, tmp.line, tmp.col, what);
  }

  // Raw body up to {%(-|+|)\s*endraw\s*(?:+%}|-%}\s*|%}\n?); the body is lstripped like text.
  Result<size_t> lex_raw(size_t begin, size_t body, bool line_starting) {
    size_t p = body;
    while (true) {
      const size_t b = src_.find("{%", p);
      if (b == std::string::npos) return error_at(begin, "Missing end of raw directive");
      size_t q = b + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_spaces(q);
      if (starts_with(q, "endraw")) {
        q = skip_spaces(q + 6);
        size_t end = std::string::npos;
        if (starts_with(q, "+%}")) end = q + 3;
        else if (starts_with(q, "-%}")) end = skip_spaces(q + 3);
        else if (starts_with(q, "%}")) end = q + 2 + (starts_with(q + 2, "\n") ? 1 : 0);
        if (end != std::string::npos) {
          std::string text = src_.substr(body, b - body);
          apply_lstrip(text, sign, true, line_starting);
          emit_data(body, std::move(text));
          return end;
        }
      }
      p = b + 1;
    }
  }

  // Comment body up to the first "+#}", "-#}\s*" or "#}\n?".
  Result<size_t> lex_comment(size_t begin, size_t after, bool& line_starting) {
    for (size_t p = after; p < src_.size(); ++p) {
      size_t end = std::string::npos;
      if (starts_with(p, "+#}")) end = p + 3;
      else if (starts_with(p, "-#}")) end = skip_spaces(p + 3);
      else if (starts_with(p, "#}")) end = p + 2 + (starts_with(p + 2, "\n") ? 1 : 0);
      if (end != std::string::npos) {
        line_starting = src_[end - 1] == '\n';
        return end;
      }
    }
    return error_at(begin, "Missing end of comment tag");
  }

  // Inside {% %} or {{ }}: end rule first (only with balanced brackets), then whitespace, float,
  // integer, name, string, operator — jinja2's rule order.
  Result<size_t> lex_tag(size_t begin, size_t pos, bool is_block, bool& line_starting) {
    Token open;
    open.type = is_block ? TokenType::kBlockBegin : TokenType::kVariableBegin;
    set_position(open, begin);
    tokens_.push_back(std::move(open));
    std::vector<char> balance;
    const size_t n = src_.size();
    while (pos < n) {
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (is_block) {
          if (starts_with(pos, "+%}")) end = pos + 3;
          else if (starts_with(pos, "-%}")) end = skip_spaces(pos + 3);
          else if (starts_with(pos, "%}")) end = pos + 2 + (starts_with(pos + 2, "\n") ? 1 : 0);
        } else {
          if (starts_with(pos, "-}}")) end = skip_spaces(pos + 3);
          else if (starts_with(pos, "}}")) end = pos + 2;
        }
        if (end != std::string::npos) {
          Token close;
          close.type = is_block ? TokenType::kBlockEnd : TokenType::kVariableEnd;
          set_position(close, pos);
          tokens_.push_back(std::move(close));
          line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      size_t len = 0;
      if (is_space_at(pos, &len)) {
        pos = skip_spaces(pos);
        continue;
      }
      const char c = src_[pos];
      Token tok;
      set_position(tok, pos);
      if (c >= '0' && c <= '9') {
        TL_ASSIGN_OR_RETURN(pos, lex_number(pos, tok));
      } else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || static_cast<unsigned char>(c) >= 0x80) {
        size_t e = pos;
        while (e < n) {
          const char d = src_[e];
          const bool ident = d == '_' || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || (d >= '0' && d <= '9') ||
                             static_cast<unsigned char>(d) >= 0x80;
          if (!ident) break;
          size_t sl = 0;
          if (static_cast<unsigned char>(d) >= 0x80 && is_space_at(e, &sl)) break;
          ++e;
        }
        tok.type = TokenType::kName;
        tok.text = src_.substr(pos, e - pos);
        pos = e;
      } else if (c == '\'' || c == '"') {
        TL_ASSIGN_OR_RETURN(pos, lex_string(pos, tok));
      } else {
        static const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* two : kTwo) {
          if (starts_with(pos, two)) op = two;
        }
        if (op.empty() && std::string_view("+-/*%~[](){}><=.:|,;").find(c) != std::string_view::npos) op = std::string(1, c);
        if (op.empty()) {
          return error_at(pos, fmt::format("unexpected char {} at {}", py_str_repr(std::string(1, c)), pos));
        }
        if (op == "{" || op == "(" || op == "[") {
          balance.push_back(op == "{" ? '}' : (op == "(" ? ')' : ']'));
        } else if (op == "}" || op == ")" || op == "]") {
          if (balance.empty()) return error_at(pos, fmt::format("unexpected '{}'", op));
          const char expected = balance.back();
          balance.pop_back();
          if (expected != op[0]) return error_at(pos, fmt::format("unexpected '{}', expected '{}'", op, expected));
        }
        tok.type = TokenType::kOperator;
        tok.text = op;
        pos += op.size();
      }
      tokens_.push_back(std::move(tok));
    }
    line_starting = false;
    return pos;  // end of source inside a tag: the parser reports the missing end
  }

  // (\d+_)*\d+ starting at pos; returns the end or pos when absent.
  size_t digit_run(size_t pos) const {
    size_t p = pos;
    const size_t n = src_.size();
    if (p >= n || !std::isdigit(static_cast<unsigned char>(src_[p]))) return pos;
    while (p < n && std::isdigit(static_cast<unsigned char>(src_[p]))) {
      ++p;
      if (p + 1 < n && src_[p] == '_' && std::isdigit(static_cast<unsigned char>(src_[p + 1]))) ++p;
    }
    return p;
  }

  Result<size_t> lex_number(size_t pos, Token& tok) {
    const size_t n = src_.size();
    auto strip_underscores = [](std::string s) {
      std::string out;
      for (char ch : s) {
        if (ch != '_') out.push_back(ch);
      }
      return out;
    };
    // float_re (not after a "."): digits, then .digits and/or e[+-]digits.
    if (pos == 0 || src_[pos - 1] != '.') {
      size_t p = digit_run(pos);
      size_t frac_end = std::string::npos;
      if (p < n && src_[p] == '.') {
        const size_t f = digit_run(p + 1);
        if (f > p + 1) frac_end = f;
      }
      size_t q = frac_end != std::string::npos ? frac_end : p;
      size_t exp_end = std::string::npos;
      if (q < n && (src_[q] == 'e' || src_[q] == 'E')) {
        size_t r = q + 1;
        if (r < n && (src_[r] == '+' || src_[r] == '-')) ++r;
        const size_t e = digit_run(r);
        if (e > r) exp_end = e;
      }
      const size_t end = exp_end != std::string::npos ? exp_end : frac_end;
      if (end != std::string::npos) {
        tok.type = TokenType::kFloat;
        tok.float_value = std::strtod(strip_underscores(src_.substr(pos, end - pos)).c_str(), nullptr);
        return end;
      }
    }
    // integer_re: 0b/0o/0x, [1-9](_?\d)*, 0(_?0)*.
    tok.type = TokenType::kInteger;
    if (src_[pos] == '0' && pos + 1 < n) {
      const char base_char = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos + 1])));
      int base = base_char == 'b' ? 2 : base_char == 'o' ? 8 : base_char == 'x' ? 16 : 0;
      if (base) {
        size_t p = pos + 2;
        std::string digits;
        while (p < n) {
          const char d = src_[p];
          const bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(d)) != 0
                                     : (d >= '0' && d < static_cast<char>('0' + base));
          if (ok) {
            digits.push_back(d);
            ++p;
          } else if (d == '_' && p + 1 < n && src_[p + 1] != '_') {
            ++p;
          } else {
            break;
          }
        }
        if (!digits.empty()) {
          errno = 0;
          tok.int_value = static_cast<int64_t>(std::strtoull(digits.c_str(), nullptr, base));
          if (errno == ERANGE || digits.size() > 20) return error_at(pos, "integer literal too large");
          return p;
        }
      }
    }
    size_t end;
    if (src_[pos] == '0') {
      end = pos + 1;
      while (end < n && (src_[end] == '0' || (src_[end] == '_' && end + 1 < n && src_[end + 1] == '0'))) ++end;
    } else {
      end = digit_run(pos);
    }
    const std::string digits = strip_underscores(src_.substr(pos, end - pos));
    errno = 0;
    const unsigned long long v = std::strtoull(digits.c_str(), nullptr, 10);
    if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) {
      return error_at(pos, "integer literal too large (tuneloop integers are 64-bit)");
    }
    tok.int_value = static_cast<int64_t>(v);
    return end;
  }

  // '...' or "..." with backslash escapes; the value is decoded as Python's unicode-escape.
  Result<size_t> lex_string(size_t pos, Token& tok) {
    const char quote = src_[pos];
    size_t p = pos + 1;
    const size_t n = src_.size();
    std::string raw;
    while (true) {
      if (p >= n) return error_at(pos, fmt::format("unexpected char {} at {}", py_str_repr(std::string(1, quote)), pos));
      const char c = src_[p];
      if (c == quote) break;
      if (c == '\\') {
        if (p + 1 >= n) return error_at(pos, fmt::format("unexpected char {} at {}", py_str_repr(std::string(1, quote)), pos));
        raw.push_back(c);
        raw.push_back(src_[p + 1]);
        p += 2;
        continue;
      }
      raw.push_back(c);
      ++p;
    }
    tok.type = TokenType::kString;
    TL_ASSIGN_OR_RETURN(tok.text, unescape(raw, pos));
    return p + 1;
  }

  Result<std::string> unescape(const std::string& raw, size_t pos) {
    std::string out;
    const size_t n = raw.size();
    for (size_t i = 0; i < n; ++i) {
      if (raw[i] != '\\' || i + 1 >= n) {
        out.push_back(raw[i]);
        continue;
      }
      const char e = raw[++i];
      auto hex = [&](size_t count, const char* what) -> Result<char32_t> {
        char32_t v = 0;
        for (size_t k = 1; k <= count; ++k) {
          if (i + k >= n || !std::isxdigit(static_cast<unsigned char>(raw[i + k]))) {
            return error_at(pos, fmt::format("truncated {} escape", what));
          }
          const char d = raw[i + k];
          v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(d)) ? d - '0' : std::tolower(d) - 'a' + 10);
        }
        i += count;
        return v;
      };
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': {
          TL_ASSIGN_OR_RETURN(char32_t v, hex(2, "\\xXX"));
          utf8_append(out, v);
          break;
        }
        case 'u': {
          TL_ASSIGN_OR_RETURN(char32_t v, hex(4, "\\uXXXX"));
          utf8_append(out, v);
          break;
        }
        case 'U': {
          TL_ASSIGN_OR_RETURN(char32_t v, hex(8, "\\UXXXXXXXX"));
          if (v > 0x10FFFF) return error_at(pos, "illegal Unicode character");
          utf8_append(out, v);
          break;
        }
        case 'N': return error_at(pos, "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i + 1 < n && raw[i + 1] >= '0' && raw[i + 1] <= '7'; ++k) {
              v = v * 8 + static_cast<char32_t>(raw[++i] - '0');
            }
            utf8_append(out, v);
          } else {  // unknown escape: Python keeps the backslash
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    return out;
  }

  std::string src_;
  const std::string& origin_;
  std::vector<Token> tokens_;
  size_t line_pos_ = 0;
  size_t line_start_ = 0;
  int line_ = 1;
};

}  // namespace

Result<std::vector<Token>> tokenize(std::string_view source, const std::string& origin) {
  Lexer lexer(Lexer::normalize(source), origin);
  return lexer.run();
}

}  // namespace tl::jinja
