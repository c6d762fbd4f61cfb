// TokenizerImpl: the frozen state behind tl::Tokenizer — the components parsed from tokenizer.json
// (see loader.cpp) and the facts taken from tokenizer_config.json. Shared read-only between copies of a
// Tokenizer and between threads; only the BPE word cache inside `model` mutates (under its own lock).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/detail/added_vocabulary.h"
#include "tokenizer/detail/bpe.h"
#include "tokenizer/detail/decoder.h"
#include "tokenizer/detail/normalizer.h"
#include "tokenizer/detail/pre_tokenizer.h"

namespace tl::tokenizer_detail {

// The `single` template of a TemplateProcessing post-processor: special-token ids around the sequence.
struct TemplatePiece {
  bool is_sequence = false;
  std::vector<int32_t> ids;  // for special-token pieces
};

struct TokenizerImpl {
  std::string origin;

  BpeModel model;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Decoder decoder;
  std::optional<std::vector<TemplatePiece>> single_template;  // nullopt: nothing is added

  std::vector<AddedToken> added_tokens;
  StringIdMap added_token_ids;        // content -> id (checked before the model vocab)
  AddedTokenMatcher raw_matcher;      // tokens with normalized == false, matched in raw text
  AddedTokenMatcher normalized_matcher;  // tokens with normalized == true, matched after normalization

  std::vector<std::string> id_to_token;  // model vocab overlaid with added tokens; "" = no token
  std::vector<bool> has_token;
  std::vector<bool> special;
  int32_t vocab_size = 0;

  std::string bos_token, eos_token;
  std::optional<int32_t> bos_token_id, eos_token_id;
  std::map<std::string, std::string> chat_templates;

  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;
};

// Parses tokenizer.json (+ optional tokenizer_config.json) into a TokenizerImpl. Defined in loader.cpp.
Result<std::shared_ptr<TokenizerImpl>> load_tokenizer(std::string_view tokenizer_json,
                                                      std::string_view tokenizer_config_json,
                                                      const std::string& origin);

}  // namespace tl::tokenizer_detail
