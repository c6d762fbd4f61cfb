// Tokenizer and StreamDecoder: the encode pipeline (added tokens -> normalizer -> pre-tokenizer -> BPE
// -> post-processor, in HF's order), decode, and the streaming window decoder. Loading lives in
// detail/loader.cpp; the components in detail/.
#include "tokenizer/tokenizer.h"

#include "core/file.h"
#include "tokenizer/detail/tokenizer_impl.h"
#include "tokenizer/detail/unicode.h"

namespace tl {

namespace tokenizer_detail {

Result<std::vector<int32_t>> TokenizerImpl::encode(std::string_view input, bool add_special_tokens) const {
  // A Python str cannot hold invalid UTF-8, so HF never sees it: repair it the way bytes.decode(...,
  // "replace") would have (documented in tokenizer.h).
  std::string repaired;
  std::string_view text = input;
  if (!utf8_is_valid(input)) {
    repaired = utf8_lossy(input);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<AddedSplit> raw_splits, normalized_splits;
  std::string normalized;
  Pieces words, scratch;

  // 1. Tokens with normalized == false are found in the raw text.
  raw_matcher.split(text, raw_splits);
  for (const AddedSplit& raw : raw_splits) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    std::string_view piece = text.substr(raw.start, raw.end - raw.start);
    // 2. The rest is normalized, then searched for tokens with normalized == true.
    std::string_view norm = piece;
    if (!normalizer.empty()) {
      TL_TRY(normalizer.normalize(piece, normalized));
      norm = normalized;
    }
    normalized_matcher.split(norm, normalized_splits);
    for (const AddedSplit& ns : normalized_splits) {
      if (ns.id >= 0) {
        ids.push_back(ns.id);
        continue;
      }
      std::string_view sub = norm.substr(ns.start, ns.end - ns.start);
      if (sub.empty()) continue;  // HF drops empty splits before pre-tokenization
      // 3. Pre-tokenize and run the model on each word.
      const bool at_origin = raw.start == 0 && ns.start == 0;
      TL_TRY(pre_tokenizer.pre_tokenize(sub, at_origin, words, scratch));
      for (const Pieces::Piece& w : words.items) TL_TRY(model.tokenize(words.view(w), ids));
    }
  }

  // 4. Post-processor (TemplateProcessing's `single`), only when special tokens are wanted.
  if (!add_special_tokens || !single_template) return ids;
  std::vector<int32_t> out;
  out.reserve(ids.size() + 4);
  for (const TemplatePiece& piece : *single_template) {
    if (piece.is_sequence) {
      out.insert(out.end(), ids.begin(), ids.end());
    } else {
      out.insert(out.end(), piece.ids.begin(), piece.ids.end());
    }
  }
  return out;
}

std::string TokenizerImpl::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token.size() || !has_token[static_cast<size_t>(id)]) continue;
    if (skip_special_tokens && special[static_cast<size_t>(id)]) continue;
    tokens.push_back(id_to_token[static_cast<size_t>(id)]);
  }
  return decoder.decode(std::move(tokens));
}

}  // namespace tokenizer_detail

Result<Tokenizer> Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                       const std::string& origin) {
  TL_ASSIGN_OR_RETURN(auto impl, tokenizer_detail::load_tokenizer(tokenizer_json, tokenizer_config_json, origin));
  return Tokenizer(std::move(impl));
}

Result<Tokenizer> Tokenizer::load(const std::string& dir) {
  const std::string json_path = dir + "/tokenizer.json";
  if (!file_exists(json_path)) {
    return not_found("{}: no tokenizer.json (only HF fast-tokenizer directories are supported)", dir);
  }
  TL_ASSIGN_OR_RETURN(std::string json, read_file(json_path));
  std::string config;
  if (file_exists(dir + "/tokenizer_config.json")) {
    TL_ASSIGN_OR_RETURN(config, read_file(dir + "/tokenizer_config.json"));
  }
  TL_ASSIGN_OR_RETURN(auto impl, tokenizer_detail::load_tokenizer(json, config, dir));
  // transformers >= 4.43 saves the template beside the config; it takes precedence there too.
  if (file_exists(dir + "/chat_template.jinja")) {
    TL_ASSIGN_OR_RETURN(impl->chat_templates["default"], read_file(dir + "/chat_template.jinja"));
  }
  return Tokenizer(std::move(impl));
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->encode(text, add_special_tokens);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return impl_->decode(ids, skip_special_tokens);
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_token_ids.find(token); it != impl_->added_token_ids.end()) return it->second;
  if (auto it = impl_->model.vocab.find(token); it != impl_->model.vocab.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size || !impl_->has_token[static_cast<size_t>(id)]) return std::nullopt;
  return impl_->id_to_token[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::bos_token_id() const { return impl_->bos_token_id; }
std::optional<int32_t> Tokenizer::eos_token_id() const { return impl_->eos_token_id; }
std::string Tokenizer::bos_token() const { return impl_->bos_token; }
std::string Tokenizer::eos_token() const { return impl_->eos_token; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && impl_->special[static_cast<size_t>(id)];
}

const std::map<std::string, std::string>& Tokenizer::chat_templates() const { return impl_->chat_templates; }

// StreamDecoder follows HF's DecodeStream (tokenizers/src/tokenizer/mod.rs, step_decode_stream): the
// window ids_ decodes to prefix_ + new text; new text is released only when the decode grew and does
// not end in U+FFFD (an incomplete character), and then the window slides so that context-dependent
// decoders (Strip, Metaspace's first token) see the same tokens both times.
//
// One addition: with a ByteFallback decoder, text is also held back while the last id is a "<0xXX>"
// token. HF's ByteFallback turns a whole run of byte tokens into one U+FFFD per byte as soon as any part
// of the run is invalid, so a character completed mid-run could still be replaced by a later partial
// byte; waiting for the run to close keeps the stream's output equal to decode() of the same ids.
StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {
  for (const auto& step : tokenizer_.impl_->decoder.steps) {
    if (step.kind == tokenizer_detail::DecoderStep::Kind::kByteFallback) hold_byte_runs_ = true;
  }
}

static bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

static bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>';
}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  if (hold_byte_runs_) {
    const auto& impl = *tokenizer_.impl_;
    if (id >= 0 && id < impl.vocab_size && impl.has_token[static_cast<size_t>(id)] &&
        is_byte_token(impl.id_to_token[static_cast<size_t>(id)])) {
      return "";
    }
  }
  std::string text = tokenizer_.decode(ids_, skip_special_tokens_);
  if (text.size() <= prefix_.size() || ends_with_replacement(text)) return "";
  if (text.compare(0, prefix_.size(), prefix_) != 0) {
    // Cannot happen with HF's decoders once byte runs are held back (each step is prefix-stable); if a
    // decoder ever rewrote earlier text, release nothing and restart the window at this id.
    ids_.assign(1, id);
    prefix_.clear();
    prefix_index_ = 0;
    return "";
  }
  std::string new_text = text.substr(prefix_.size());
  size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(prefix_index_));
  prefix_ = tokenizer_.decode(ids_, skip_special_tokens_);
  prefix_index_ = new_prefix_index;
  return new_text;
}

std::string StreamDecoder::finish() {
  std::string text = tokenizer_.decode(ids_, skip_special_tokens_);
  std::string rest;
  if (text.compare(0, prefix_.size(), prefix_) == 0) {
    rest = text.substr(prefix_.size());
  } else {
    // Defensive (see push): the not-yet-released ids on their own.
    std::span<const int32_t> pending(ids_.data() + prefix_index_, ids_.size() - prefix_index_);
    rest = tokenizer_.decode(pending, skip_special_tokens_);
  }
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return rest;
}

}  // namespace tl
