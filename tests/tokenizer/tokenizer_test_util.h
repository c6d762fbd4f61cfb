// Test helpers for the tokenizer tests: reading llama.cpp's vocab test vectors
// (inputs.txt / expected.txt) and building HF-style tokenizer.json files from tiktoken rank files.
//
// llama-bpe (Llama-3) and qwen2 ship here only as tiktoken ranks, not as tokenizer.json. HF's own
// converter (transformers' convert_slow_tokenizer.TikTokenConverter) turns ranks into a BPE vocab plus
// merges: every token is a vocab entry with id = rank, and every split of a token into two tokens is a
// merge, ordered by the rank of the merged token (ties by the ranks of the halves). Building the same
// tokenizer.json here lets the test drive the real loader and the real Split-regex path with the
// Llama-3 / Qwen2 pre-tokenizer patterns against the published ids.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_test {

inline std::string testdata(const std::string& rel) { return std::string(TL_SHARED_TESTDATA) + "/" + rel; }

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool exists(const std::string& path) { return std::ifstream(path).good(); }

struct Vector {
  std::string input;
  std::vector<int32_t> ids;
};

// inputs.txt: cases joined by "\n__ggml_vocab_test__\n" (the last piece is empty); expected.txt: one line
// of " id id ..." per case.
inline std::vector<Vector> read_vectors(const std::string& name) {
  const std::string inputs = slurp(testdata("tokenizers/" + name + "/inputs.txt"));
  const std::string expected = slurp(testdata("tokenizers/" + name + "/expected.txt"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  size_t pos = 0;
  while (true) {
    size_t next = inputs.find(sep, pos);
    if (next == std::string::npos) {
      cases.push_back(inputs.substr(pos));
      break;
    }
    cases.push_back(inputs.substr(pos, next - pos));
    pos = next + sep.size();
  }
  if (!cases.empty() && cases.back().empty()) cases.pop_back();
  std::vector<std::string> lines;
  std::stringstream es(expected);
  for (std::string line; std::getline(es, line);) lines.push_back(line);
  std::vector<Vector> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    Vector v{cases[i], {}};
    if (i < lines.size()) {
      std::stringstream ls(lines[i]);
      for (int64_t id; ls >> id;) v.ids.push_back(static_cast<int32_t>(id));
    }
    out.push_back(std::move(v));
  }
  return out;
}

inline std::string base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

inline std::string to_byte_level(std::string_view bytes) {
  const auto& alphabet = tokenizer_detail::byte_level_alphabet();
  std::string out;
  for (char c : bytes) out += alphabet.byte_to_utf8[static_cast<unsigned char>(c)];
  return out;
}

// A tokenizer.json for a tiktoken rank file: byte-level BPE with `split_regex`, optional NFC, the given
// added tokens, and ignore_merges as given (Llama-3's file sets it, Qwen2's predates it).
inline std::string tiktoken_tokenizer_json(const std::string& rank_file, const std::string& split_regex, bool nfc,
                                           bool ignore_merges,
                                           const std::vector<std::pair<std::string, int32_t>>& added,
                                           const std::string& bos) {
  std::vector<std::string> by_rank;
  std::unordered_map<std::string, int32_t> ranks;
  std::stringstream in(slurp(rank_file));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    size_t space = line.find(' ');
    std::string bytes = base64_decode(line.substr(0, space));
    auto rank = static_cast<int32_t>(std::stol(line.substr(space + 1)));
    if (static_cast<size_t>(rank) >= by_rank.size()) by_rank.resize(static_cast<size_t>(rank) + 1);
    by_rank[static_cast<size_t>(rank)] = bytes;
    ranks.emplace(bytes, rank);
  }
  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::json merges = nlohmann::json::array();
  for (size_t r = 0; r < by_rank.size(); ++r) {
    const std::string& token = by_rank[r];
    vocab[to_byte_level(token)] = r;
    std::vector<std::tuple<int32_t, int32_t, size_t>> local;
    for (size_t k = 1; k < token.size(); ++k) {
      auto l = ranks.find(token.substr(0, k)), rr = ranks.find(token.substr(k));
      if (l != ranks.end() && rr != ranks.end()) local.emplace_back(l->second, rr->second, k);
    }
    std::sort(local.begin(), local.end());
    for (auto& [lr, rr, k] : local) {
      merges.push_back({to_byte_level(token.substr(0, k)), to_byte_level(token.substr(k))});
    }
  }
  nlohmann::json added_tokens = nlohmann::json::array();
  for (auto& [content, id] : added) {
    added_tokens.push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                            {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  nlohmann::json post = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
  if (!bos.empty()) {
    int32_t bos_id = -1;
    for (auto& [content, id] : added) {
      if (content == bos) bos_id = id;
    }
    nlohmann::json single = nlohmann::json::array();
    single.push_back({{"SpecialToken", {{"id", bos}, {"type_id", 0}}}});
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    nlohmann::json special = nlohmann::json::object();
    special[bos] = {{"id", bos}, {"ids", nlohmann::json::array({bos_id})}, {"tokens", nlohmann::json::array({bos})}};
    nlohmann::json templ = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", nlohmann::json::array()},
                            {"special_tokens", special}};
    post = {{"type", "Sequence"}, {"processors", nlohmann::json::array({post, templ})}};
  }
  nlohmann::json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_tokens},
      {"normalizer", nfc ? nlohmann::json{{"type", "NFC"}} : nlohmann::json(nullptr)},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", split_regex}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", ignore_merges},
        {"vocab", vocab}, {"merges", merges}}}};
  return root.dump();
}

// The published pre-tokenizer patterns (from the models' tokenizer.json files).
inline const std::string kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline const std::string kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

inline std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s.push_back(' ');
    s.append(std::to_string(id));
  }
  return s;
}

}  // namespace tl::tokenizer_test
