// Datasets: JSONL files in the formats users have (OpenAI chat, ShareGPT, Alpaca, input/output pairs, DPO pairs) →
// tokenized examples with loss masks → packed training sequences.
//
// Each conversation is rendered by the model's own chat_template (byte-identical to transformers). The
// assistant turns to train on are located by rendering the conversation up to each one: the turn's span
// runs from the end of `render(messages[:i], add_generation_prompt=true)` to the end of
// `render(messages[:i+1])`, so it includes the template's end-of-turn token. Spans and the text between
// them are tokenized separately and concatenated (turn boundaries are special tokens in real templates,
// so this equals tokenizing the whole text). A template that is not prefix-stable for a conversation is
// an error naming the line. Without a chat template, prompt/completion formats (alpaca, input_output)
// become `prompt` + `completion` + eos.
//
// Packing puts several examples into one sequence of at most max_seq_len tokens; the trainer restarts
// positions and confines attention to each example (TrainSequence), so packed loss equals unpacked loss.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/train_step.h"
#include "tokenizer/tokenizer.h"
#include "train/spec.h"

namespace tl {

struct Example {
  std::vector<int32_t> tokens;
  std::vector<int32_t> targets;  // targets[t] = tokens[t + 1] where that token is trained, else -1
  int64_t line = 0;              // 1-based line in the source file
};

struct DatasetStats {
  std::string path;
  std::string format;          // detected or given
  int64_t lines = 0;           // non-empty lines read
  int64_t examples = 0;        // examples kept
  int64_t truncated = 0;       // examples cut to max_seq_len
  int64_t dropped_after_truncation = 0;  // examples whose trained tokens were all cut away
  int64_t tokens = 0;          // tokens kept
  int64_t trained_tokens = 0;  // tokens with a target
};

struct DataOptions {
  DataFormat format = DataFormat::kAuto;
  bool train_on_all = false;
  int64_t max_seq_len = 2048;
};

// Reads, renders and tokenizes a JSONL file. Errors name the file and line: bad JSON, unknown or mixed
// formats, bad messages, examples without any trained token, an empty file.
Result<std::vector<Example>> load_examples(const std::string& path, const Tokenizer& tokenizer, const DataOptions& options,
                                           DatasetStats* stats);

// The format of a JSONL file's first record, for commands that take either kind of data. Errors name
// the file and line.
Result<DataFormat> detect_file_format(const std::string& path);

// A preference pair for DPO: the prompt followed by each completion, trained on the completion only
// (both Examples carry the record's line).
struct PreferencePair {
  Example chosen, rejected;
};

// Reads preference records: {prompt, chosen, rejected} (the prompt a string, taken as one user message,
// or a list of messages; each completion a string, taken as one assistant message, or a list of
// messages) or OpenAI's {input: {messages, tools?}, preferred_output, non_preferred_output}. Each
// completion is rendered after the prompt by the chat template and trained on its assistant turns
// (train_on does not apply); chosen and rejected are truncated to max_seq_len each, and a pair where
// either lost all its trained tokens is dropped (counted). Errors name the file and line.
Result<std::vector<PreferencePair>> load_preference_pairs(const std::string& path, const Tokenizer& tokenizer,
                                                          const DataOptions& options, DatasetStats* stats);

// Groups examples into sequences: first-fit in order when packing, else one example per sequence.
std::vector<TrainSequence> pack_examples(const std::vector<Example>& examples, int64_t max_seq_len, bool packing);

}  // namespace tl
