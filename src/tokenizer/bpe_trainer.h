// Trains a small byte-level BPE tokenizer (GPT-2 style: ByteLevel pre-tokenizer with the GPT-2 regex,
// 256 byte tokens, then the most frequent merges) and writes it as a Hugging Face tokenizer directory
// (tokenizer.json + tokenizer_config.json with a ChatML chat_template). For the demo and for tests that
// need a real tokenizer whose vocabulary fits a tiny model; the files load in HF tokenizers as they are.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace tl {

struct BpeTrainOptions {
  int num_merges = 256;
  // Added after the byte tokens and merges, as special tokens; the last one is the eos token.
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
};

// Returns the vocabulary size written (256 + merges learned + specials).
Result<int> write_bpe_tokenizer(const std::string& dir, const std::string& corpus, const BpeTrainOptions& options);

}  // namespace tl
