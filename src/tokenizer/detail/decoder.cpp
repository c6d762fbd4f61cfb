// Decoder steps (see decoder.h), each a transcription of the matching HF decode_chain.
#include "tokenizer/detail/decoder.h"

#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_detail {

namespace {

// ByteLevel: every character of a token maps back to one byte; a token with a character outside the
// byte alphabet (e.g. an added token written in plain text) contributes its own UTF-8 bytes. The
// concatenation is repaired with U+FFFD (String::from_utf8_lossy).
std::vector<std::string> byte_level(const std::vector<std::string>& tokens) {
  const ByteLevelAlphabet& alphabet = byte_level_alphabet();
  std::string bytes;
  for (const std::string& t : tokens) {
    size_t start = bytes.size();
    bool ok = true;
    for (size_t i = 0; i < t.size() && ok;) {
      size_t len = 0;
      uint32_t cp = utf8_decode_at(t, i, &len);
      i += len;
      if (cp < alphabet.cp_to_byte.size() && alphabet.cp_to_byte[cp] >= 0) {
        bytes.push_back(static_cast<char>(alphabet.cp_to_byte[cp]));
      } else {
        ok = false;
      }
    }
    if (!ok) {
      bytes.resize(start);
      bytes += t;
    }
  }
  return {utf8_lossy(bytes)};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ByteFallback: runs of "<0xXX>" tokens become the string they spell; if that is not valid UTF-8, one
// U+FFFD per byte (HF's rule, not the maximal-subpart rule).
std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string pending;
  auto flush = [&] {
    if (pending.empty()) return;
    if (utf8_is_valid(pending)) {
      out.push_back(pending);
    } else {
      for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    pending.clear();
  };
  for (std::string& t : tokens) {
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_value(t[3]) >= 0 && hex_value(t[4]) >= 0) {
      pending.push_back(static_cast<char>(hex_value(t[3]) * 16 + hex_value(t[4])));
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  return out;
}

std::string replace_all(const Regex& pattern, const std::string& content, const std::string& in) {
  std::vector<std::pair<size_t, size_t>> matches;
  // Decoding never fails: a regex resource error leaves the token unchanged.
  if (!pattern.find_all(in, matches).is_ok()) return in;
  std::string out;
  size_t prev = 0;
  for (auto [s, e] : matches) {
    out.append(in, prev, s - prev);
    out += content;
    prev = e;
  }
  out.append(in, prev);
  return out;
}

// Strip: removes up to `start` leading and `stop` trailing copies of one character.
std::string strip(const std::string& token, const std::string& ch, size_t start, size_t stop) {
  std::vector<std::pair<size_t, size_t>> chars;  // (offset, length) of each character
  for (size_t i = 0; i < token.size();) {
    size_t len = utf8_char_length(static_cast<unsigned char>(token[i]));
    chars.emplace_back(i, len);
    i += len;
  }
  auto is_ch = [&](size_t k) { return token.compare(chars[k].first, chars[k].second, ch) == 0; };
  size_t start_cut = 0;
  for (size_t i = 0; i < start && i < chars.size(); ++i) {
    if (!is_ch(i)) break;
    start_cut = i + 1;
  }
  size_t stop_cut = chars.size();
  for (size_t i = 0; i < stop && i < chars.size(); ++i) {
    size_t index = chars.size() - i - 1;
    if (!is_ch(index)) break;
    stop_cut = index;
  }
  if (stop_cut <= start_cut) return "";
  size_t b = chars[start_cut].first;
  size_t e = stop_cut == chars.size() ? token.size() : chars[stop_cut].first;
  return token.substr(b, e - b);
}

}  // namespace

std::string Decoder::decode(std::vector<std::string> tokens) const {
  if (!present) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderStep::Kind::kByteLevel:
        tokens = byte_level(tokens);
        break;
      case DecoderStep::Kind::kByteFallback:
        tokens = byte_fallback(std::move(tokens));
        break;
      case DecoderStep::Kind::kFuse: {
        std::string fused;
        for (const std::string& t : tokens) fused += t;
        tokens.assign(1, std::move(fused));
        break;
      }
      case DecoderStep::Kind::kReplace:
        for (std::string& t : tokens) t = replace_all(*step.pattern, step.content, t);
        break;
      case DecoderStep::Kind::kStrip:
        for (std::string& t : tokens) t = strip(t, step.content, step.start, step.stop);
        break;
      case DecoderStep::Kind::kMetaspace:
        // Every replacement character becomes a space, except that the first token loses them all
        // unless prepend_scheme is "never" (HF's Metaspace::decode_chain).
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string out;
          const std::string& t = tokens[i];
          for (size_t j = 0; j < t.size();) {
            if (t.compare(j, step.content.size(), step.content) == 0) {
              if (!(i == 0 && step.prepend_scheme != PrependScheme::kNever)) out += ' ';
              j += step.content.size();
            } else {
              size_t len = utf8_char_length(static_cast<unsigned char>(t[j]));
              out.append(t, j, len);
              j += len;
            }
          }
          tokens[i] = std::move(out);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace tl::tokenizer_detail
