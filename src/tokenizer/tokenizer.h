// Tokenizer: Hugging Face `tokenizer.json` tokenizers (BPE, byte-level and SentencePiece-style),
// reproducing the ids that HF `tokenizers` produces, plus a streaming decoder for generation.
//
// Training, evaluation and serving all turn text into ids with the model's own tokenizer; an id that
// differs from what the model saw in pre-training silently degrades everything downstream, so the
// contract here is bit-exactness with HF `tokenizers` (the Rust library behind `AutoTokenizer`'s
// fast tokenizers) for every component we accept, and a clear error for every component we do not.
//
// Supported components (docs/tokenizer.md has the full list and the behaviours):
//   model            BPE (vocab + merges in "a b" or ["a","b"] form, byte_fallback, unk_token,
//                    fuse_unk, ignore_merges, continuing_subword_prefix, end_of_word_suffix)
//   normalizer       Prepend, Replace, NFC, NFKC, NFD, NFKD, Strip, Sequence
//   pre_tokenizer    ByteLevel, Split, Metaspace, Digits, Sequence
//   post_processor   TemplateProcessing, ByteLevel, Sequence
//   decoder          ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence
//   added_tokens     lstrip / rstrip / normalized / single_word / special, split out before the model
//
// Behaviours worth knowing:
//   - `truncation` and `padding` in tokenizer.json are ignored: encode() never truncates or pads
//     (HF's own reference vectors were produced without truncation; callers decide lengths).
//   - Invalid UTF-8 in encode()'s input is not an error: each maximal invalid subsequence is replaced
//     by U+FFFD before tokenizing, exactly as Python's `bytes.decode("utf-8", "replace")` would have
//     done before the text ever reached HF (a Python str cannot hold invalid UTF-8).
//   - Text that spells an added token (e.g. "<|endoftext|>") is encoded as that token, as HF does.
//   - decode() skips ids that no token has (HF does the same); it never fails. Invalid byte sequences
//     produced by byte-level/byte-fallback tokens decode to U+FFFD as in HF.
//   - decode() mirrors `tokenizers`' decode; transformers' `clean_up_tokenization_spaces` post-pass is
//     not applied.
//   - tokenizer_config.json's add_bos_token / add_eos_token, when present, replace the single-sequence
//     template with [bos] $A [eos] (as transformers' LlamaTokenizerFast.update_post_processor does).
//
// Usage:
//   TL_ASSIGN_OR_RETURN(tl::Tokenizer tok, tl::Tokenizer::load("models/qwen2.5-0.5b-instruct"));
//   TL_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.encode("Hello world"));
//   std::string text = tok.decode(ids);
//   tl::StreamDecoder stream(tok);
//   for (int32_t id : generated) std::cout << stream.push(id);
//   std::cout << stream.finish();
//
// A Tokenizer is immutable after loading, cheap to copy (shared state) and safe to use from many
// threads at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tl {

namespace tokenizer_detail {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // `dir` holds tokenizer.json and optionally tokenizer_config.json (bos_token, eos_token,
  // add_bos_token, add_eos_token, chat_template as a string or as a list of {name, template},
  // added_tokens_decoder) and chat_template.jinja (which, if present, is the "default" template).
  static Result<Tokenizer> load(const std::string& dir);

  // Same as load() from in-memory files. `tokenizer_config_json` may be empty (no config). `origin`
  // labels error messages: they read "<origin>/tokenizer.json: <json path>: <what>" ("tokenizer.json:
  // ..." when origin is empty).
  static Result<Tokenizer> from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                     const std::string& origin);

  // Text -> ids. With add_special_tokens, the post-processor's template adds BOS/EOS etc. Fails only
  // for tokenizers whose unk_token is missing from the vocabulary (as HF does, when it is needed) or
  // when the regex engine hits a resource limit.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens = true) const;

  // Ids -> text through the tokenizer's decoder. Unknown ids are skipped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // One more than the largest id of any token, model vocabulary and added tokens together.
  int32_t vocab_size() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token's string as stored in the vocabulary (e.g. "Ġworld", "▁world", "<0x0A>"); nullopt if
  // no token has this id.
  std::optional<std::string> id_to_token(int32_t id) const;

  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;
  // Token strings, for chat templates ("" if none is configured).
  std::string bos_token() const;
  std::string eos_token() const;
  // True for added tokens flagged "special" (skipped by decode(..., skip_special_tokens=true)).
  bool is_special(int32_t id) const;

  // Chat templates from tokenizer_config.json: name -> template source; the single-string form (and
  // chat_template.jinja) is "default".
  const std::map<std::string, std::string>& chat_templates() const;

 private:
  friend class StreamDecoder;
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl_;
};

// Streaming decode for generation: push ids one at a time; push() returns only text that is final
// (complete UTF-8 characters; partial characters and incomplete byte-fallback sequences are held back
// until complete; with a ByteFallback decoder, until the run of "<0xXX>" tokens ends, because HF
// decodes an invalid run as a whole). finish() flushes the rest, invalid leftovers as U+FFFD. The concatenation of all
// push() results and finish() equals tokenizer.decode(all ids). Keeps a copy of the tokenizer (cheap),
// so it may outlive the object it was built from.
//
// Like HF's DecodeStream, it re-decodes a short window of recent ids and emits the new suffix, so the
// cost per id is the decode of a few tokens.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(int32_t id);
  std::string finish();

 private:
  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  bool hold_byte_runs_ = false;  // the decoder has a ByteFallback step
  std::vector<int32_t> ids_;  // the window: ids_[0 .. prefix_index_) decode to prefix_
  std::string prefix_;
  size_t prefix_index_ = 0;
};

}  // namespace tl
