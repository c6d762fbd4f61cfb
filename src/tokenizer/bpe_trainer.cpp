#include "tokenizer/bpe_trainer.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/file.h"
#include "tokenizer/detail/regex.h"

namespace tl {

namespace {

// GPT-2's reversible byte -> printable unicode character map.
std::vector<std::string> byte_to_unicode() {
  std::vector<int> cps(256, -1);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cps[b] = b;
  }
  for (int b = 0; b < 256; ++b)
    if (cps[b] < 0) cps[b] = 256 + n++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    int cp = cps[b];
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out[static_cast<size_t>(b)] = s;
  }
  return out;
}

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<std::vector<std::string>> pretokenize(const std::string& text) {
  std::string error;
  auto re = tokenizer_detail::Regex::compile(kGpt2Pattern, &error);
  if (!re) return internal_error("GPT-2 pre-tokenizer regex: {}", error);
  std::vector<std::pair<size_t, size_t>> spans;
  TL_TRY(re->find_all(text, spans));
  std::vector<std::string> words;
  for (const auto& [b, e] : spans) words.emplace_back(text.substr(b, e - b));
  return words;
}

}  // namespace

Result<int> write_bpe_tokenizer(const std::string& dir, const std::string& corpus, const BpeTrainOptions& options) {
  TL_ASSIGN_OR_RETURN(std::vector<std::string> words, pretokenize(corpus));
  const std::vector<std::string> b2u = byte_to_unicode();
  // Word -> count, each word as a list of symbol ids.
  std::map<std::string, int64_t> counts;
  for (const auto& w : words) counts[w]++;
  std::vector<std::string> vocab(b2u.begin(), b2u.end());
  std::vector<std::pair<std::vector<int>, int64_t>> seqs;
  for (const auto& [w, c] : counts) {
    std::vector<int> s;
    for (unsigned char ch : w) s.push_back(ch);
    seqs.emplace_back(std::move(s), c);
  }
  std::vector<std::pair<int, int>> merges;
  for (int m = 0; m < options.num_merges; ++m) {
    std::map<std::pair<int, int>, int64_t> pairs;  // ordered: ties break on the smallest pair, deterministically
    for (const auto& [s, c] : seqs)
      for (size_t i = 0; i + 1 < s.size(); ++i) pairs[{s[i], s[i + 1]}] += c;
    std::pair<int, int> best{-1, -1};
    int64_t best_count = 1;  // a merge must occur at least twice
    for (const auto& [p, c] : pairs)
      if (c > best_count) best_count = c, best = p;
    if (best.first < 0) break;
    const int id = static_cast<int>(vocab.size());
    vocab.push_back(vocab[static_cast<size_t>(best.first)] + vocab[static_cast<size_t>(best.second)]);
    merges.push_back(best);
    for (auto& [s, c] : seqs) {
      std::vector<int> out;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) {
          out.push_back(id);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s = std::move(out);
    }
  }
  nlohmann::ordered_json vocab_json = nlohmann::ordered_json::object();
  for (size_t i = 0; i < vocab.size(); ++i) vocab_json[vocab[i]] = i;
  nlohmann::ordered_json merges_json = nlohmann::ordered_json::array();
  for (const auto& [a, b] : merges) merges_json.push_back(vocab[static_cast<size_t>(a)] + " " + vocab[static_cast<size_t>(b)]);
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  int next = static_cast<int>(vocab.size());
  for (const auto& sp : options.special_tokens) {
    added.push_back({{"id", next++}, {"content", sp}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  }
  nlohmann::ordered_json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab_json},
                 {"merges", merges_json}}},
  };
  const std::string eos = options.special_tokens.empty() ? "" : options.special_tokens.back();
  nlohmann::ordered_json cfg = {
      {"bos_token", nullptr},
      {"eos_token", eos},
      {"pad_token", options.special_tokens.empty() ? "" : options.special_tokens.front()},
      {"model_max_length", 2048},
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"chat_template",
       "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
       "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error("{}: cannot create directory: {}", dir, ec.message());
  TL_TRY(write_file_atomic(dir + "/tokenizer.json", tok.dump(2) + "\n"));
  TL_TRY(write_file_atomic(dir + "/tokenizer_config.json", cfg.dump(2) + "\n"));
  return next;
}

}  // namespace tl
